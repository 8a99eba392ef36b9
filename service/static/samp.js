// A small SAMP Web Profile client (SAMP 1.3 §5): send a table to TOPCAT or Aladin Desktop.
//
// The hub runs on the user's machine (TOPCAT and Aladin start one) and speaks XML-RPC
// at http://localhost:21012/. The page registers once, on the first send (the hub asks
// the user to accept), looks up the wanted application among the clients subscribed to
// table.load.votable, and sends it the URL of the VOTable; the application downloads
// the table itself.

export const HUB_URL = "http://localhost:21012/";
const MTYPE = "table.load.votable";

/** A SAMP failure with a message for people; `kind` is "nohub", "denied", "absent" or "hub". */
export class SampError extends Error {
  constructor(message, kind = "hub") {
    super(message);
    this.kind = kind;
  }
}

function escapeXml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function encode(value) {
  if (Array.isArray(value)) {
    return `<value><array><data>${value.map(encode).join("")}</data></array></value>`;
  }
  if (value !== null && typeof value === "object") {
    const members = Object.entries(value)
      .map(([name, v]) => `<member><name>${escapeXml(name)}</name>${encode(v)}</member>`);
    return `<value><struct>${members.join("")}</struct></value>`;
  }
  return `<value><string>${escapeXml(value)}</string></value>`;
}

function decode(valueElement) {
  const typed = Array.from(valueElement.children)[0];
  if (!typed) return valueElement.textContent; // a bare <value>text</value> is a string
  switch (typed.localName) {
    case "struct": {
      const out = {};
      for (const member of typed.children) {
        const name = member.getElementsByTagName("name")[0];
        const value = member.getElementsByTagName("value")[0];
        if (name && value) out[name.textContent] = decode(value);
      }
      return out;
    }
    case "array": {
      const data = typed.getElementsByTagName("data")[0];
      return data ? Array.from(data.children).map(decode) : [];
    }
    case "int": case "i4": case "double": return Number(typed.textContent);
    case "boolean": return typed.textContent.trim() === "1";
    default: return typed.textContent;
  }
}

/** One XML-RPC call to the hub; its result, or SampError. */
export async function call(method, params, hubUrl = HUB_URL) {
  const body = '<?xml version="1.0"?>' +
    `<methodCall><methodName>${escapeXml(method)}</methodName><params>` +
    params.map((p) => `<param>${encode(p)}</param>`).join("") + "</params></methodCall>";
  let response;
  try {
    response = await fetch(hubUrl, { method: "POST", headers: { "Content-Type": "text/xml" }, body });
  } catch {
    throw new SampError("No SAMP hub is running on this computer: start TOPCAT or Aladin " +
                        "Desktop (each runs one) and try again.", "nohub");
  }
  if (!response.ok) throw new SampError(`The SAMP hub answered HTTP ${response.status}.`);
  const doc = new DOMParser().parseFromString(await response.text(), "application/xml");
  const fault = doc.getElementsByTagName("fault")[0];
  if (fault) {
    const detail = decode(fault.getElementsByTagName("value")[0]);
    const text = typeof detail === "object" ? detail.faultString || "" : String(detail);
    const denied = /den(y|ied)|refus|reject/i.test(text);
    throw new SampError(denied ? "The SAMP hub refused the connection (it asks you to accept " +
                                 "the vo_clip page in a dialog)." : `SAMP hub error: ${text}`,
                        denied ? "denied" : "hub");
  }
  const value = doc.querySelector("methodResponse > params > param > value");
  if (!value) throw new SampError("The SAMP hub sent an answer that is not XML-RPC.");
  return decode(value);
}

/** A registration with the hub, made on first use and kept for the page's lifetime. */
export class SampClient {
  constructor(hubUrl = HUB_URL) {
    this.hubUrl = hubUrl;
    this.key = null;
    addEventListener("pagehide", () => this.close());
  }

  async register() {
    if (this.key) return this.key;
    const registration = await call("samp.webhub.register",
                                    [{ "samp.name": "vo_clip" }], this.hubUrl);
    this.key = registration["samp.private-key"];
    await call("samp.webhub.declareMetadata", [this.key, {
      "samp.name": "vo_clip",
      "samp.description.text": "vo_clip search page: Hubble observations in plain language",
    }], this.hubUrl);
    return this.key;
  }

  /** The ids of the clients subscribed to table.load.votable whose name contains `name`. */
  async recipients(name) {
    const key = await this.register();
    const subscribed = await call("samp.webhub.getSubscribedClients", [key, MTYPE], this.hubUrl);
    const found = [];
    for (const id of Object.keys(subscribed || {})) {
      const metadata = await call("samp.webhub.getMetadata", [key, id], this.hubUrl);
      if (String(metadata["samp.name"] || "").toLowerCase().includes(name.toLowerCase())) {
        found.push(id);
      }
    }
    return found;
  }

  /** Send the VOTable at `url` to the application called `name`; resolves to its count. */
  async sendTable(name, { url, tableName }) {
    let ids;
    try {
      ids = await this.recipients(name);
    } catch (error) {
      if (!(error instanceof SampError) || error.kind !== "hub" || !this.key) throw error;
      this.key = null; // the hub restarted and forgot us: register again, once
      ids = await this.recipients(name);
    }
    if (!ids.length) {
      throw new SampError(`${name} is not connected to the SAMP hub: start it (or connect it ` +
                          "from its SAMP menu) and try again.", "absent");
    }
    const message = {
      "samp.mtype": MTYPE,
      "samp.params": { url, "table-id": `vo_clip-${Date.now()}`, name: tableName },
    };
    for (const id of ids) await call("samp.webhub.notify", [this.key, id, message], this.hubUrl);
    return ids.length;
  }

  close() {
    if (!this.key) return;
    const body = '<?xml version="1.0"?><methodCall><methodName>samp.webhub.unregister' +
      `</methodName><params><param>${encode(this.key)}</param></params></methodCall>`;
    this.key = null;
    fetch(this.hubUrl, { method: "POST", headers: { "Content-Type": "text/xml" }, body,
                         keepalive: true }).catch(() => {});
  }
}
