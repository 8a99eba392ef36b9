// The sky panel: Aladin Lite v3 (from the npm package, served by this service) showing
// where the results are, and the FITS product of the selected one.
//
// Offline by construction: the background is the blank HiPS served by this service, the
// survey list, Simbad pointer, sharing and logging are off, and the CDS proxy Aladin Lite
// retries failed downloads through is pointed at a local 404. The page's CSP blocks any
// other origin anyway; the browser tests check that nothing is even attempted.

const MARKER = "#ffb000";
const FOOTPRINT = "#4fc3f7";
const HIGHLIGHT = "#ff4fd8";
const PRODUCT_LAYER = "vo_clip product";

/** What the sky view shows, readable by tests as window.voClipSky. */
export const state = {
  ready: false,
  error: "",
  selected: null,     // obs_id
  fits: "none",       // none | loading | shown | missing | error
  fitsUrl: "",
  message: "",
};

function absolute(url) {
  return new URL(url, document.baseURI).href;
}

/** The initial field of view for a row: a few times its footprint, at least 3 arcmin. */
function fovFor(row, vertices) {
  if (!vertices) return 0.15;
  const cosDec = Math.cos((row.s_dec * Math.PI) / 180) || 1;
  let extent = 0;
  for (const [ra, dec] of vertices) {
    let dra = Math.abs(ra - row.s_ra);
    if (dra > 180) dra = 360 - dra;
    extent = Math.max(extent, dra * cosDec, Math.abs(dec - row.s_dec));
  }
  return Math.min(Math.max(extent * 5, 0.05), 180);
}

export class Sky {
  /**
   * @param {HTMLElement} container the element Aladin Lite draws in
   * @param {HTMLElement} statusElement where the panel says what it is doing
   * @param {{aladinUrl: string, hipsUrl: string, noProxyUrl: string}} urls
   * @param {(index: number) => void} onPick called when a marker or footprint is clicked
   */
  constructor(container, statusElement, urls, onPick) {
    this.container = container;
    this.statusElement = statusElement;
    this.urls = urls;
    this.onPick = onPick;
    this.aladin = null;
    this.rows = [];
    this.vertices = [];
    this.token = 0;
    window.voClipSky = state;
    this.ready = this.start();
  }

  say(message) {
    state.message = message;
    this.statusElement.textContent = message;
  }

  async start() {
    if (!this.urls.aladinUrl) {
      state.error = "not installed";
      this.container.hidden = true;
      this.statusElement.textContent = "";
      this.statusElement.append("Aladin Lite is not installed: run ");
      const code = document.createElement("code");
      code.textContent = "npm ci";
      this.statusElement.append(code);
      state.message = this.statusElement.textContent;
      return false;
    }
    let A;
    try {
      A = (await import(this.urls.aladinUrl)).default;
      await A.init;
    } catch (error) {
      state.error = String(error && error.message ? error.message : error);
      this.container.hidden = true;
      this.say(`The sky view could not start (${state.error}). Results still work.`);
      return false;
    }
    this.A = A;
    const aladin = A.aladin(this.container, {
      survey: absolute(this.urls.hipsUrl),
      hipsList: [],
      log: false,
      samp: false,
      mode: "dark",
      projection: "AIT",
      cooFrame: "ICRS",
      target: "0 +0",
      fov: 360,
      showCooGrid: true,
      gridOptions: { color: "rgb(120, 140, 170)", opacity: 0.5, showLabels: true },
      backgroundColor: "rgb(22, 27, 38)",
      showLayersControl: false,
      showSimbadPointerControl: false,
      showShareControl: false,
      showSettingsControl: false,
      showColorPickerControl: false,
      showCooGridControl: false,
      showProjectionControl: false,
      showContextMenu: false,
      showFullscreenControl: true,
      showReticle: false,
    });
    // Failed downloads are retried through a CDS proxy: send those retries here instead.
    aladin.constructor.JSONP_PROXY = absolute(this.urls.noProxyUrl);
    this.markers = A.catalog({ name: "vo_clip results", shape: "circle", sourceSize: 14,
                               color: MARKER });
    this.footprints = A.graphicOverlay({ name: "footprints", color: FOOTPRINT, lineWidth: 2 });
    this.highlight = A.graphicOverlay({ name: "selected", color: HIGHLIGHT, lineWidth: 3 });
    this.selectedMarker = A.catalog({ name: "selected result", shape: "plus", sourceSize: 26,
                                      color: HIGHLIGHT });
    aladin.addOverlay(this.footprints);
    aladin.addOverlay(this.highlight);
    aladin.addCatalog(this.markers);
    aladin.addCatalog(this.selectedMarker);
    aladin.on("objectClicked", (object) => {
      const index = object && object.data ? object.data.vo_clip_index : undefined;
      if (Number.isInteger(index)) this.onPick(index);
    });
    this.aladin = aladin;
    window.voClipAladin = aladin;
    state.ready = true;
    this.say("Markers show where the results are; select a result to see its FITS image.");
    return true;
  }

  /** Mark every result: a circle at (s_ra, s_dec) and its footprint polygon. */
  async show(rows, vertices) {
    this.rows = rows;
    this.vertices = vertices;
    if (!(await this.ready)) return;
    const A = this.A;
    this.markers.clear();
    this.footprints.removeAll();
    this.highlight.removeAll();
    this.selectedMarker.clear();
    this.markers.addSources(rows
      .map((row, index) => [row, index])
      .filter(([row]) => Number.isFinite(row.s_ra) && Number.isFinite(row.s_dec))
      .map(([row, index]) => A.source(row.s_ra, row.s_dec, { vo_clip_index: index })));
    for (const polygon of vertices) {
      if (polygon) this.footprints.add(A.polygon(polygon.map((v) => [...v])));
    }
    this.say(rows.length ? `${rows.length} results marked; select one to centre on it.` : "");
  }

  /** Centre on a result, highlight it and overlay its FITS product. */
  async select(index, productUrl) {
    const row = this.rows[index];
    if (!row || !(await this.ready)) return;
    const token = ++this.token;
    state.selected = row.obs_id;
    const A = this.A;
    this.highlight.removeAll();
    this.selectedMarker.clear();
    const polygon = this.vertices[index];
    if (polygon) this.highlight.add(A.polygon(polygon.map((v) => [...v])));
    if (Number.isFinite(row.s_ra) && Number.isFinite(row.s_dec)) {
      this.selectedMarker.addSources([A.source(row.s_ra, row.s_dec, { vo_clip_index: index })]);
      this.aladin.gotoRaDec(row.s_ra, row.s_dec);
      this.aladin.setFoV(fovFor(row, polygon));
    }
    await this.showFits(productUrl, row.obs_id, token);
  }

  /**
   * Fetch the FITS product here (so that a missing product is reported, not retried
   * through a remote proxy) and hand Aladin Lite the bytes as a blob: URL.
   */
  async showFits(url, name, token) {
    state.fits = "loading";
    state.fitsUrl = url;
    this.say(`Loading the FITS image of ${name}…`);
    let blob;
    try {
      const response = await fetch(url);
      if (!response.ok) {
        if (token !== this.token) return;
        state.fits = "missing";
        this.removeProduct();
        this.say(`${name}: no FITS image to show (HTTP ${response.status}); the marker shows where it is.`);
        return;
      }
      blob = await response.blob();
      const head = await blob.slice(0, 6).text();
      if (head !== "SIMPLE") throw new Error("the product is not a FITS file");
    } catch (error) {
      if (token !== this.token) return;
      state.fits = "error";
      this.say(`${name}: the FITS image could not be loaded (${error.message}).`);
      return;
    }
    if (token !== this.token) return;
    const blobUrl = URL.createObjectURL(blob);
    const done = (ok, detail) => {
      URL.revokeObjectURL(blobUrl);
      if (token !== this.token) return;
      state.fits = ok ? "shown" : "error";
      this.say(ok ? `${name}: FITS image shown.`
                  : `${name}: Aladin Lite could not display the FITS image (${detail}).`);
    };
    // Aladin Lite may show a layer's name as markup: give it only safe characters.
    const label = String(name).replace(/[^\w.:+-]/g, "_");
    const image = this.aladin.createImageFITS(blobUrl, { name: label, imgFormat: "fits" },
                                              () => done(true), (e) => done(false, e));
    try {
      await this.aladin.setOverlayImageLayer(image, PRODUCT_LAYER);
    } catch (error) {
      if (state.fits === "loading") done(false, error && error.message ? error.message : error);
    }
  }

  removeProduct() {
    if (this.aladin && this.aladin.getOverlayImageLayer(PRODUCT_LAYER)) {
      this.aladin.removeImageLayer(PRODUCT_LAYER);
    }
  }
}
