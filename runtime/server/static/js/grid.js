// The grid builder: entries (images, codes, random) on two factors; the other factors, the mode and the
// seed from the mix panel. One POST /v1/grid renders and labels the whole grid on the server.

import { explain, formatMs, postForm } from "./api.js";
import { describeFile, fileUrl, imageInput, showBlob } from "./inputs.js";
import { FACTORS, codeCount, codeWord } from "./mix.js";
import { $, setError, title } from "./ui.js";

const ENTRIES_MAX = 16; // per factor: 16 x 16 cells is plenty for a page (the server allows 256)

class Axis {
  constructor(key, factor, info, onChange) {
    this.key = key;
    this.info = info;
    this.entries = []; // {file} or {spec: "random" | "code", n}
    this.onChange = onChange;
    const box = $(`axis-${key}`);

    const pick = document.createElement("label");
    pick.className = "factor-pick";
    this.select = document.createElement("select");
    this.select.id = `grid-factor-${key}`;
    for (const kind of FACTORS) this.select.add(new Option(kind, kind, false, kind === factor));
    pick.append("Factor ", this.select);
    this.select.addEventListener("change", () => this.factorChanged());

    this.list = document.createElement("ul");
    this.list.className = "entries";
    this.list.id = `grid-entries-${key}`;
    this.list.setAttribute("aria-live", "polite");
    box.append(pick, this.list);

    imageInput(box, {
      id: `grid-${key}`,
      what: `Images for the ${key === "a" ? "first" : "second"} factor`,
      multiple: true,
      onFiles: (files) => files.forEach((file) => this.add({ file })),
      onError: (error) => setError("grid-error", error.message),
    });

    const specs = document.createElement("div");
    specs.className = "add-spec";
    const numberLabel = document.createElement("label");
    this.number = document.createElement("input");
    Object.assign(this.number, { type: "number", id: `grid-code-${key}`, min: 0, value: 0 });
    this.numberWord = document.createElement("span");
    numberLabel.append(this.numberWord, " ", this.number);
    this.addCode = document.createElement("button");
    this.addCode.type = "button";
    this.addCode.id = `grid-add-code-${key}`;
    this.addCode.addEventListener("click", () => this.addNumber());
    this.number.addEventListener("keydown", (event) => {
      if (event.key === "Enter") this.addNumber();
    });
    const random = document.createElement("button");
    random.type = "button";
    random.textContent = "Add random";
    random.addEventListener("click", () => this.add({ spec: "random" }));
    specs.append(numberLabel, this.addCode, random);
    box.append(specs);
    this.factorChanged();
  }

  get factor() {
    return this.select.value;
  }

  factorChanged() {
    const word = codeWord(this.factor);
    this.numberWord.textContent = title(word);
    this.number.max = codeCount(this.factor, this.info) - 1;
    this.addCode.textContent = `Add ${word}`;
    this.render(); // specs are shown (and sent) with the new factor's word
    this.onChange();
  }

  addNumber() {
    const n = this.number.valueAsNumber;
    if (!Number.isInteger(n) || n < 0) {
      setError("grid-error", `${title(codeWord(this.factor))}: a whole number from 0.`);
      return;
    }
    this.add({ spec: "code", n });
  }

  add(entry) {
    if (this.entries.length >= ENTRIES_MAX) {
      setError("grid-error", `At most ${ENTRIES_MAX} entries per factor.`);
      return;
    }
    setError("grid-error");
    this.entries.push(entry);
    this.render();
  }

  // The entry as the API takes it: the File, or its spec in the current factor's words.
  value(entry) {
    if (entry.file) return entry.file;
    return entry.spec === "random" ? "random" : `${codeWord(this.factor)}:${entry.n}`;
  }

  render() {
    this.list.replaceChildren(...this.entries.map((entry, index) => {
      const item = document.createElement("li");
      const value = this.value(entry);
      const name = value instanceof File ? value.name : value;
      if (value instanceof File) {
        const img = document.createElement("img");
        img.src = fileUrl(value);
        img.alt = describeFile(value);
        item.append(img);
      }
      const text = document.createElement("span");
      text.textContent = name;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${name} from the ${this.factor} entries`);
      remove.addEventListener("click", () => {
        this.entries.splice(index, 1);
        this.render();
      });
      item.append(text, remove);
      return item;
    }));
  }
}

export class GridPanel {
  constructor(info, mix) {
    this.mix = mix;
    this.controller = null;
    const check = () => this.check();
    this.axes = [new Axis("a", "background", info, check), new Axis("b", "texture", info, check)];
    $("grid-render").addEventListener("click", () => this.run());
  }

  // Why the grid cannot be asked for as it stands, or "".
  check() {
    const [a, b] = this.axes ?? [];
    if (!a || !b) return "";
    const problem = a.factor === b.factor ? "Choose two different factors." : "";
    setError("grid-error", problem);
    return problem;
  }

  async run() {
    const [a, b] = this.axes;
    const problem = this.check()
      || (a.entries.length && b.entries.length ? "" : "Add at least one entry to each factor.");
    if (problem) {
      setError("grid-error", problem);
      return;
    }
    this.controller?.abort();
    const controller = (this.controller = new AbortController());
    const form = new FormData();
    for (const axis of this.axes) {
      for (const entry of axis.entries) {
        const value = axis.value(entry);
        if (value instanceof File) form.append(axis.factor, value, value.name);
        else form.append(axis.factor, value);
      }
    }
    this.mix.fill(form, [a.factor, b.factor]);
    const figure = $("grid-result");
    figure.setAttribute("aria-busy", "true");
    $("grid-status").textContent = "Rendering the grid…";
    const cells = a.entries.length * b.entries.length;
    try {
      const { blob, totalMs, serverMs } = await postForm("/v1/grid", form, controller.signal);
      const img = $("grid-image");
      showBlob(img, blob);
      const names = (axis) => axis.entries.map((entry) => {
        const value = axis.value(entry);
        return value instanceof File ? describeFile(value) : value;
      }).join(", ");
      img.alt = `A labelled grid of ${cells} mixes: ${a.factor} (${names(a)}) against ${b.factor} (${names(b)}).`;
      $("grid-caption").textContent = `${a.factor} × ${b.factor}, ${cells} mixes; other factors: `
        + FACTORS.filter((kind) => kind !== a.factor && kind !== b.factor)
          .map((kind) => `${kind} ${this.mix.label(kind)}`).join(", ");
      figure.hidden = false;
      $("grid-status").textContent = `Grid rendered in ${formatMs(totalMs)} (server ${formatMs(serverMs)}).`;
      setError("grid-error");
    } catch (error) {
      if (error.name === "AbortError") return;
      $("grid-status").textContent = "";
      setError("grid-error", explain("The server could not make this grid", error));
    }
    figure.setAttribute("aria-busy", "false");
  }
}
