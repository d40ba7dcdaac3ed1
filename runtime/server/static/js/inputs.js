// Every way an image gets onto the page: a drop zone around a real <input type="file">, and the gallery
// of demo images (PNGs the server ships in /static/gallery, listed by gallery.json).

import { getJSON } from "./api.js";

const GALLERY = "/static/gallery/";
const GALLERY_DRAG = "application/x-mnm-gallery";

let gallery = [];
const galleryFiles = new Map(); // file name -> Promise<File>, each fetched once
const labels = new WeakMap(); // File -> words for alt text (the gallery's description)

export async function loadGallery() {
  try {
    gallery = (await getJSON(`${GALLERY}gallery.json`)).images || [];
  } catch {
    gallery = []; // the page works without it: uploads, random and codes remain
  }
}

// A gallery image as a File, so it is uploaded exactly like a file chosen from disk.
function galleryFile(entry) {
  if (!galleryFiles.has(entry.file)) {
    const pending = fetch(GALLERY + entry.file)
      .then((response) => {
        if (!response.ok) throw new Error(`demo image ${entry.file}: ${response.status} ${response.statusText}`);
        return response.blob();
      })
      .then((blob) => {
        const file = new File([blob], entry.file, { type: blob.type || "image/png" });
        labels.set(file, entry.label);
        return file;
      });
    pending.catch(() => galleryFiles.delete(entry.file)); // let a later pick try again
    galleryFiles.set(entry.file, pending);
  }
  return galleryFiles.get(entry.file);
}

// How to describe an image to someone who cannot see it.
export function describeFile(file) {
  return labels.get(file) || file.name;
}

const objectUrls = new WeakMap(); // img -> its current blob URL

// Show ``blob`` in ``img``, releasing the blob URL it showed before.
export function showBlob(img, blob) {
  const previous = objectUrls.get(img);
  if (previous) URL.revokeObjectURL(previous);
  const url = URL.createObjectURL(blob);
  objectUrls.set(img, url);
  img.src = url;
  return url;
}

const fileUrls = new WeakMap(); // File -> its blob URL, made once (thumbnails of the same file share it)

export function fileUrl(file) {
  if (!fileUrls.has(file)) fileUrls.set(file, URL.createObjectURL(file));
  return fileUrls.get(file);
}

// Fill ``container`` with the image-input template and wire it: the zone is the <label> of a visually
// hidden file input, so Tab reaches the input, Enter or Space opens the file chooser, and the zone
// shows the focus; files dropped on the zone, chosen, or picked in the gallery go to ``onFiles``.
export function imageInput(container, { id, what, multiple = false, onFiles, onError }) {
  const node = document.getElementById("image-input").content.firstElementChild.cloneNode(true);
  const input = node.querySelector("input[type=file]");
  const zone = node.querySelector(".zone");
  const preview = node.querySelector(".zone-preview");
  const details = node.querySelector(".gallery");
  input.id = `file-${id}`;
  input.multiple = multiple;
  zone.htmlFor = input.id;
  node.querySelector(".zone-what").textContent = `${what}.`;
  node.querySelector(".zone-what").classList.add("visually-hidden");

  const deliver = async (getFiles) => {
    try {
      const files = await getFiles();
      if (files.length) onFiles(multiple ? files : files.slice(0, 1));
    } catch (error) {
      onError(error);
    }
  };

  input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = ""; // choosing the same file again is a change too
    deliver(async () => files);
  });

  const accepts = (event) => [...event.dataTransfer.types].some((t) => t === "Files" || t === GALLERY_DRAG);
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      if (!accepts(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const files = [...event.dataTransfer.files];
    const picked = gallery.find((entry) => entry.file === event.dataTransfer.getData(GALLERY_DRAG));
    deliver(async () => (files.length ? files : picked ? [await galleryFile(picked)] : []));
  });

  const thumbs = node.querySelector(".thumbs");
  for (const entry of gallery) {
    const button = document.createElement("button");
    button.type = "button";
    button.draggable = true;
    const img = document.createElement("img");
    img.src = GALLERY + entry.file;
    img.alt = entry.label;
    img.width = img.height = 48;
    button.append(img);
    button.addEventListener("click", () => {
      if (!multiple) details.open = false;
      deliver(async () => [await galleryFile(entry)]);
    });
    button.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData(GALLERY_DRAG, entry.file);
      event.dataTransfer.effectAllowed = "copy";
    });
    thumbs.append(button);
  }
  details.hidden = gallery.length === 0;
  container.append(node);

  return {
    input,
    // Show the chosen image in the zone (single-image inputs).
    show(file) {
      preview.src = fileUrl(file);
      preview.alt = `${what}: ${describeFile(file)}`;
      preview.hidden = false;
    },
  };
}
