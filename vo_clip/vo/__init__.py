"""Protocol logic, one module per IVOA standard; returns tables and raises VO errors."""
