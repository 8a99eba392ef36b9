// ADQL built from the search form: validated numbers, quoted strings, one query shape.
//
// The page shows the query it sends, so that users can run the same search in TOPCAT;
// everything typed goes through sqlString() or a number check before it reaches ADQL.

export const MAX_TOP = 1000;
export const DEFAULT_TOP = 50;
const MJD_UNIX_EPOCH = 40587; // MJD of 1970-01-01
const DAY_MS = 86400000;

/** A mistake in the form, reported next to the form rather than sent to the service. */
export class FormError extends Error {}

/** An ADQL character literal: single quotes doubled (ADQL 2.1 §2.1.3). */
export function sqlString(text) {
  return "'" + String(text).replaceAll("'", "''") + "'";
}

/** A finite number in [min, max] (integers only when asked), or FormError naming the field. */
export function parseNumber(raw, label, { min = -Infinity, max = Infinity, integer = false,
                                          exclusiveMin = false } = {}) {
  const text = String(raw).trim().replace("\u2212", "-");
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) {
    throw new FormError(`${label} must be a number, not “${raw}”.`);
  }
  const value = Number(text);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new FormError(`${label} must be ${integer ? "a whole number" : "a number"}.`);
  }
  if (value < min || value > max || (exclusiveMin && value === min)) {
    const low = exclusiveMin ? `more than ${min}` : `at least ${min}`;
    throw new FormError(`${label} must be ${low} and at most ${max}.`);
  }
  return value;
}

/** MJD (UTC) of midnight at the start of an <input type=date> value (YYYY-MM-DD). */
export function dateToMjd(value) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!match) throw new FormError(`“${value}” is not a date (YYYY-MM-DD).`);
  const ms = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return ms / DAY_MS + MJD_UNIX_EPOCH;
}

/** An MJD as an ISO date and time (UTC, to the minute), or "" when not a number. */
export function mjdToIso(mjd) {
  if (typeof mjd !== "number" || !Number.isFinite(mjd)) return "";
  const date = new Date((mjd - MJD_UNIX_EPOCH) * DAY_MS);
  if (Number.isNaN(date.getTime())) return "";
  return date.toISOString().slice(0, 16).replace("T", " ");
}

/**
 * The filters of the form, checked: {top, instrument, tmin, tmax, cone}.
 * `fields` holds the raw strings: top, instrument, from, to, ra, dec, radius.
 */
export function readFilters(fields) {
  const filters = { top: DEFAULT_TOP, instrument: "", tmin: null, tmax: null, cone: null };
  if (String(fields.top ?? "").trim() !== "") {
    filters.top = parseNumber(fields.top, "The number of results", { min: 1, max: MAX_TOP,
                                                                      integer: true });
  }
  const instrument = String(fields.instrument ?? "").trim().toUpperCase();
  if (instrument) {
    // Letters, digits, '/', '-' and spaces: no LIKE wildcards, no quotes.
    if (!/^[A-Z0-9][A-Z0-9/ -]{0,31}$/.test(instrument)) {
      throw new FormError("The instrument is a name or its beginning, e.g. ACS or WFC3/IR.");
    }
    filters.instrument = instrument;
  }
  if (fields.from) filters.tmin = dateToMjd(fields.from);
  if (fields.to) filters.tmax = dateToMjd(fields.to) + 1; // to the end of that day
  if (filters.tmin !== null && filters.tmax !== null && filters.tmin >= filters.tmax) {
    throw new FormError("The first date must come before the second.");
  }
  const cone = [fields.ra, fields.dec, fields.radius].map((v) => String(v ?? "").trim());
  if (cone.some((v) => v !== "")) {
    if (cone.some((v) => v === "")) {
      throw new FormError("A cone needs all three of RA, Dec and radius (degrees).");
    }
    filters.cone = {
      ra: parseNumber(cone[0], "RA", { min: 0, max: 360 }),
      dec: parseNumber(cone[1], "Dec", { min: -90, max: 90 }),
      radius: parseNumber(cone[2], "The radius", { min: 0, max: 180, exclusiveMin: true }),
    };
  }
  return filters;
}

/** The search text: trimmed, whitespace collapsed, not empty, at most 1000 characters. */
export function cleanText(text) {
  const clean = String(text ?? "").replace(/\s+/g, " ").trim();
  if (!clean) throw new FormError("Describe what you are looking for, or choose an image.");
  if (clean.length > 1000) throw new FormError("The description is longer than 1000 characters.");
  return clean;
}

const COLUMNS = [
  "o.obs_id, o.obs_publisher_did, o.target_name, o.instrument_name,",
  "o.t_min, o.s_ra, o.s_dec, o.s_region, o.access_url,",
  "h.preview_url, h.proposal_id, h.proposal_title,",
];

function conditions(filters) {
  const where = [];
  if (filters.instrument) where.push(`o.instrument_name LIKE ${sqlString(filters.instrument + "%")}`);
  if (filters.tmin !== null && filters.tmax !== null) {
    where.push(`o.t_min BETWEEN ${filters.tmin} AND ${filters.tmax}`);
  } else if (filters.tmin !== null) {
    where.push(`o.t_min >= ${filters.tmin}`);
  } else if (filters.tmax !== null) {
    where.push(`o.t_min <= ${filters.tmax}`);
  }
  if (filters.cone) {
    const { ra, dec, radius } = filters.cone;
    where.push("1 = CONTAINS(POINT('ICRS', o.s_ra, o.s_dec), " +
               `CIRCLE('ICRS', ${ra}, ${dec}, ${radius}))`);
  }
  return where;
}

function assemble(top, similarity, where, match = null) {
  const lines = [`SELECT TOP ${top} ${COLUMNS[0]}`];
  for (const line of COLUMNS.slice(1)) lines.push(`       ${line}`);
  lines.push(`       ${similarity} AS similarity${match ? "," : ""}`);
  if (match) lines.push(`       ${match} AS match`);
  lines.push("FROM ivoa.ObsCore AS o");
  lines.push("JOIN hst.observations AS h USING (obs_id)");
  where.forEach((condition, i) => lines.push(`${i ? "  AND" : "WHERE"} ${condition}`));
  lines.push("ORDER BY similarity DESC");
  return lines.join("\n");
}

/** The ranked text search; with `match`, also the calibrated match probability (the
 *  service has one when its archive says what its previews show). */
export function textQuery(text, filters, { match = false } = {}) {
  const quoted = sqlString(cleanText(text));
  const similarity = `vo_clip_similarity(o.obs_publisher_did, ${quoted})`;
  return assemble(filters.top, similarity, conditions(filters),
                  match ? `vo_clip_match(o.obs_publisher_did, ${quoted})` : null);
}

/** "More like this": observations ranked by similarity to one observation's preview. */
export function likeQuery(obsId, filters) {
  const similarity = `vo_clip_similarity_to(o.obs_publisher_did, ${sqlString(obsId)})`;
  return assemble(filters.top, similarity,
                  [`o.obs_id <> ${sqlString(obsId)}`, ...conditions(filters)]);
}
