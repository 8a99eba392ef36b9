// A reader for the VOTable 1.4 TABLEDATA documents the service answers with (DALI 1.1).
//
// Only what the page needs: the QUERY_STATUS of the results resource (OK, OVERFLOW or
// ERROR with its message), the FIELD names and the rows as plain objects. The document
// is parsed as XML, never inserted into the page.

const NUMERIC = new Set(["short", "int", "long", "float", "double", "unsignedByte"]);

function children(element, name) {
  return Array.from(element.children).filter((child) => child.localName === name);
}

/** The results resource: RESOURCE type="results", else the first RESOURCE. */
function resultsResource(root) {
  const resources = Array.from(root.getElementsByTagNameNS("*", "RESOURCE"));
  return resources.find((r) => r.getAttribute("type") === "results") || resources[0] || null;
}

/**
 * Parse a VOTable document.
 * Returns {status, message, fields: [{name, datatype, unit}], rows: [{name: value}]};
 * throws an Error when the text is not a VOTable at all.
 */
export function parseVOTable(text) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  const root = doc.documentElement;
  if (!root || root.localName !== "VOTABLE" || doc.getElementsByTagName("parsererror").length) {
    throw new Error("the service did not answer with a VOTable");
  }
  const resource = resultsResource(root);
  let status = "OK";
  let message = "";
  if (resource) {
    // DALI: QUERY_STATUS comes before the table; an OVERFLOW may also follow it.
    for (const info of children(resource, "INFO")) {
      if (info.getAttribute("name") !== "QUERY_STATUS") continue;
      const value = (info.getAttribute("value") || "").toUpperCase();
      if (status !== "ERROR") {
        status = value || status;
        message = (info.textContent || "").trim();
      }
    }
  }
  const table = resource ? children(resource, "TABLE")[0] : null;
  if (!table) return { status, message, fields: [], rows: [] };
  const fields = children(table, "FIELD").map((field) => ({
    name: field.getAttribute("name") || field.getAttribute("ID") || "",
    datatype: field.getAttribute("datatype") || "char",
    unit: field.getAttribute("unit") || "",
  }));
  const rows = [];
  for (const tr of table.getElementsByTagNameNS("*", "TR")) {
    const row = {};
    children(tr, "TD").forEach((td, i) => {
      const field = fields[i];
      if (!field) return;
      const raw = td.textContent;
      if (NUMERIC.has(field.datatype)) {
        const value = raw.trim() === "" ? NaN : Number(raw);
        row[field.name] = Number.isNaN(value) ? null : value;
      } else {
        row[field.name] = raw === "" ? null : raw;
      }
    });
    rows.push(row);
  }
  return { status, message, fields, rows };
}

/**
 * "Polygon ICRS ra1 dec1 ra2 dec2 ..." (STC-S, the ObsCore s_region) as [[ra, dec], ...],
 * or null when the region is something else.
 */
export function polygonVertices(region) {
  if (typeof region !== "string") return null;
  const words = region.trim().split(/\s+/);
  if (words.length < 2 || words[0].toLowerCase() !== "polygon") return null;
  let i = 1;
  while (i < words.length && /^[a-z]/i.test(words[i])) i += 1; // frame, reference position
  const numbers = words.slice(i).map(Number);
  if (numbers.length < 6 || numbers.length % 2 || numbers.some((n) => !Number.isFinite(n))) {
    return null;
  }
  const vertices = [];
  for (let k = 0; k < numbers.length; k += 2) vertices.push([numbers[k], numbers[k + 1]]);
  return vertices;
}
