// mnm's web page: loads the model's description and the demo gallery, then starts the three panels.

import { getJSON } from "./api.js";
import { GridPanel } from "./grid.js";
import { loadGallery } from "./inputs.js";
import { MixPanel } from "./mix.js";
import { $ } from "./ui.js";
import { WebcamPanel } from "./webcam.js";

function describe(info) {
  const c = info.config;
  const name = info.bundle.split(/[\\/]/).filter(Boolean).slice(-2).join("/");
  return `Model ${name}: ${c.image_size} × ${c.image_size} images, ${c.n_parent} shape codes, ${c.n_child} `
    + `texture and background codes; modes: ${info.modes.join(", ")}; ${info.backend}.`;
}

async function main() {
  // A file dropped beside a drop zone must not make the browser leave the page to show it.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
  let info;
  try {
    [info] = await Promise.all([getJSON("/v1/info"), loadGallery()]);
  } catch (error) {
    $("model-info").textContent = `Cannot load the model's description (${error.message}). Reload the page when `
      + "the server is up.";
    return;
  }
  $("model-info").textContent = describe(info);
  const mix = new MixPanel(info);
  new GridPanel(info, mix);
  new WebcamPanel(info);
  document.body.dataset.ready = "true";
}

main();
