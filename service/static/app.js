// The search page: form → ADQL (shown) or image upload → VOTable → thumbnails + sky.
//
// Every value from the service reaches the page through textContent or setAttribute
// (links only when they are http(s) URLs); nothing is built with innerHTML.

import { FormError, cleanText, likeQuery, mjdToIso, readFilters, textQuery } from "./adql.js";
import { SampClient, SampError } from "./samp.js";
import { Sky } from "./sky.js";
import { parseVOTable, polygonVertices } from "./votable.js";

const MAX_UPLOAD = 20 * 1024 * 1024;
const config = document.body.dataset;
const $ = (id) => document.getElementById(id);

const form = $("search");
const status = $("status");
const errorBox = $("error");
const resultsList = $("results");
const adqlPanel = $("adql-panel");
const adqlText = $("adql");
const sampStatus = $("samp-status");
const sampButtons = [$("samp-topcat"), $("samp-aladin")];

const sky = new Sky($("aladin"), $("sky-status"),
                    { aladinUrl: config.aladin, hipsUrl: config.hips, noProxyUrl: config.noProxy },
                    (index) => select(index, { from: "sky" }));
const samp = new SampClient();

/** The current results, and the GET URL that reproduces them (null for image searches). */
let current = { rows: [], votableUrl: null, label: "" };
let searchToken = 0;

function say(message) {
  status.textContent = message;
}

function showError(message) {
  errorBox.hidden = !message;
  errorBox.textContent = message || "";
}

/** An http(s) URL from the service, or null (a javascript: URL must never become a link). */
function safeUrl(value) {
  if (typeof value !== "string" || !value) return null;
  try {
    const url = new URL(value, document.baseURI);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function productUrl(obsId) {
  return new URL(config.products + encodeURIComponent(obsId) + ".fits", document.baseURI).href;
}

function fieldValues() {
  const value = (name) => form.elements[name].value;
  return {
    top: value("top"), instrument: value("instrument"), from: value("from"), to: value("to"),
    ra: value("ra"), dec: value("dec"), radius: value("radius"),
  };
}

function mode() {
  return form.elements.mode.value === "image" ? "image" : "text";
}

function syncMode() {
  const image = mode() === "image";
  $("q").disabled = image;
  $("image").disabled = !image;
  $("text-field").classList.toggle("inactive", image);
  $("image-field").classList.toggle("inactive", !image);
}

/** Keep the address shareable: /?q=...&instrument=... reproduces a text search. */
function rememberSearch(text) {
  const params = new URLSearchParams();
  if (text) params.set("q", text);
  for (const [name, value] of Object.entries(fieldValues())) {
    if (value && !(name === "top" && value === "50")) params.set(name, value);
  }
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

function showAdql(adql, note) {
  adqlPanel.hidden = false;
  adqlText.textContent = adql;
  if (note) $("adql-note").textContent = note;
}

async function runAdql(adql, label) {
  showAdql(adql);
  const url = new URL(config.tapSync, document.baseURI);
  const body = new URLSearchParams({ LANG: "ADQL", QUERY: adql });
  const getUrl = new URL(url);
  getUrl.search = body.toString();
  await runRequest(label, getUrl.href, () => fetch(url, { method: "POST", body }));
}

async function runImage(file, filters) {
  adqlPanel.hidden = true;
  if (file.size > MAX_UPLOAD) {
    throw new FormError(`The image is ${(file.size / 1048576).toFixed(1)} MB; the limit is 20 MB.`);
  }
  const body = new FormData();
  body.append("IMAGE", file, file.name);
  body.append("TOP", String(filters.top));
  if (filters.instrument) body.append("INSTRUMENT", filters.instrument);
  if (filters.tmin !== null) body.append("TMIN", String(filters.tmin));
  if (filters.tmax !== null) body.append("TMAX", String(filters.tmax));
  if (filters.cone) {
    body.append("RA", String(filters.cone.ra));
    body.append("DEC", String(filters.cone.dec));
    body.append("RADIUS", String(filters.cone.radius));
  }
  const url = new URL(config.imageSearch, document.baseURI);
  await runRequest(`images like ${file.name}`, null, () => fetch(url, { method: "POST", body }));
}

/** Send a search, read its VOTable, show the rows or what went wrong. */
async function runRequest(label, votableUrl, send) {
  const token = ++searchToken;
  say(`Searching for ${label}…`);
  form.setAttribute("aria-busy", "true");
  let response;
  let text;
  try {
    response = await send();
    text = await response.text();
  } catch (error) {
    if (token === searchToken) {
      say("");
      showError(`The service could not be reached (${error.message}).`);
    }
    return;
  } finally {
    if (token === searchToken) form.removeAttribute("aria-busy");
  }
  if (token !== searchToken) return; // a newer search is on its way
  let table;
  try {
    table = parseVOTable(text);
  } catch {
    say("");
    showError(response.status === 404 && !votableUrl
      ? "This service does not offer image searches (HTTP 404)."
      : `The service answered HTTP ${response.status} ${response.statusText}, not a VOTable.`);
    return;
  }
  if (table.status === "ERROR" || !response.ok) {
    say("");
    const reason = table.message || `HTTP ${response.status} ${response.statusText}`;
    showError(`The search failed: ${reason}`);
    return;
  }
  current = { rows: table.rows, votableUrl, label };
  render(table.rows);
  const overflow = table.status === "OVERFLOW";
  say(`${table.rows.length} results for ${label}` +
      (overflow ? " (OVERFLOW: the service cut the list at its row limit; more matched)." : "."));
  if (overflow) showError("Only part of the results came back (QUERY_STATUS=OVERFLOW): " +
                          "ask for fewer results or narrow the filters.");
  updateSamp();
}

function render(rows) {
  resultsList.replaceChildren();
  const template = $("card-template");
  const vertices = rows.map((row) => polygonVertices(row.s_region));
  rows.forEach((row, index) => {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.index = String(index);
    card.dataset.obsId = row.obs_id ?? "";
    const pick = card.querySelector(".pick");
    const thumb = card.querySelector(".thumb");
    const target = row.target_name || "unnamed target";
    const instrument = row.instrument_name || "unknown instrument";
    const preview = safeUrl(row.preview_url);
    if (preview) thumb.setAttribute("src", preview);
    thumb.setAttribute("alt", `Preview of ${row.obs_id}: ${target}, ${instrument}`);
    const similarity = typeof row.similarity === "number" ? row.similarity.toFixed(3) : "–";
    const match = typeof row.match === "number" ? `${Math.round(100 * row.match)} %` : null;
    card.querySelector(".sim").textContent = match ? `${similarity} · match ${match}` : similarity;
    pick.setAttribute("aria-label",
                      `${index + 1}. ${target}, ${instrument}, similarity ${similarity}` +
                      `${match ? `, match ${match}` : ""}: show in the sky view`);
    pick.addEventListener("click", () => select(index, { from: "list" }));
    card.querySelector(".target").textContent = target;
    card.querySelector(".instrument").textContent = instrument;
    card.querySelector(".date").textContent = mjdToIso(row.t_min) || "–";
    const proposal = card.querySelector(".proposal");
    if (row.proposal_id || row.proposal_title) {
      proposal.textContent = `${row.proposal_id ? `Proposal ${row.proposal_id}` : "Proposal"}` +
                             `${row.proposal_title ? `: ${row.proposal_title}` : ""}`;
    } else {
      proposal.remove();
    }
    link(card.querySelector(".datalink"), row.access_url, `DataLink document of ${row.obs_id}`);
    link(card.querySelector(".preview"), row.preview_url, `Preview image of ${row.obs_id}`);
    link(card.querySelector(".fits"), row.obs_id ? productUrl(row.obs_id) : null,
         `FITS product of ${row.obs_id}`);
    const like = card.querySelector(".like");
    like.setAttribute("aria-label", `More like ${row.obs_id}`);
    like.addEventListener("click", () => searchLike(row.obs_id));
    resultsList.append(card);
  });
  sky.show(rows, vertices);
}

function link(anchor, value, label) {
  const url = safeUrl(value);
  if (!url) {
    anchor.remove();
    return;
  }
  anchor.setAttribute("href", url);
  anchor.setAttribute("aria-label", label);
}

function select(index, { from }) {
  const cards = resultsList.querySelectorAll(".card");
  cards.forEach((card, i) => {
    card.classList.toggle("selected", i === index);
    card.querySelector(".pick").setAttribute("aria-pressed", String(i === index));
  });
  const card = cards[index];
  const row = current.rows[index];
  if (!card || !row) return;
  if (from === "sky") card.scrollIntoView({ block: "nearest" });
  say(`Selected ${row.obs_id} (${row.target_name || "unnamed target"}).`);
  sky.select(index, productUrl(row.obs_id));
}

function updateSamp() {
  const enabled = Boolean(current.votableUrl) && current.rows.length > 0;
  for (const button of sampButtons) {
    button.disabled = !enabled;
    button.title = enabled ? "" : current.rows.length
      ? "SAMP sends a URL that the application downloads; an uploaded image cannot be " +
        "repeated from a URL, so only text searches can be sent."
      : "Search first.";
  }
  sampStatus.textContent = enabled || !current.rows.length
    ? "SAMP sends text-search results to TOPCAT or Aladin Desktop running on this computer."
    : "Image-search results cannot be sent over SAMP (the application would need a URL " +
      "that repeats the search); text searches can.";
}

async function sendOverSamp(application) {
  if (!current.votableUrl) return;
  sampStatus.textContent = `Sending the table to ${application}…`;
  try {
    await samp.sendTable(application, { url: current.votableUrl,
                                        tableName: `vo_clip: ${current.label}` });
    sampStatus.textContent = `Sent to ${application}.`;
  } catch (error) {
    sampStatus.textContent = error instanceof SampError ? error.message
      : `SAMP failed: ${error.message}`;
  }
}

async function search() {
  showError("");
  try {
    const filters = readFilters(fieldValues());
    if (mode() === "image") {
      const file = $("image").files[0];
      if (!file) throw new FormError("Choose an image (PNG, JPEG or FITS), or search with a description.");
      rememberSearch("");
      await runImage(file, filters);
    } else {
      const text = cleanText($("q").value);
      rememberSearch(text);
      await runAdql(textQuery(text, filters, { match: config.match === "true" }), `“${text}”`);
    }
  } catch (error) {
    if (!(error instanceof FormError)) throw error;
    say("");
    showError(error.message);
  }
}

async function searchLike(obsId) {
  showError("");
  try {
    await runAdql(likeQuery(obsId, readFilters(fieldValues())), `observations like ${obsId}`);
  } catch (error) {
    if (!(error instanceof FormError)) throw error;
    showError(error.message);
  }
}

async function copyAdql() {
  const text = adqlText.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context, or no permission: select it for Ctrl+C instead.
    const range = document.createRange();
    range.selectNodeContents(adqlText);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    say("The query is selected: press Ctrl+C (⌘C) to copy it.");
    return;
  }
  say("The ADQL query is copied to the clipboard.");
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
form.addEventListener("change", (event) => {
  if (event.target.name === "mode") syncMode();
});
$("image").addEventListener("change", () => {
  if ($("image").files.length) form.elements.mode.value = "image";
  syncMode();
});
$("copy-adql").addEventListener("click", copyAdql);
$("samp-topcat").addEventListener("click", () => sendOverSamp("TOPCAT"));
$("samp-aladin").addEventListener("click", () => sendOverSamp("Aladin"));

syncMode();
updateSamp();
window.voClipPage = { get results() { return current.rows; }, search, select };
if ($("q").value.trim()) search(); // a shared link: /?q=...
