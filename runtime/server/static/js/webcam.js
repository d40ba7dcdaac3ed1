// The live panel: camera frames go over WS /v1/animate (docs/server.md has the protocol) and the
// animated frames come back onto a canvas.
//
// The loop never queues stale frames: exactly one frame is on its way at a time. The next frame is
// captured from the camera only when the server has answered the previous one, so every frame sent is
// the newest the camera has, and a slow server lowers the frame rate instead of building a backlog.

import { formatMs } from "./api.js";
import { imageInput } from "./inputs.js";
import { $, setError } from "./ui.js";

const CAPTURE_SIDE = 256; // side of the square frames sent (the model sees S x S; this keeps uploads small)
const JPEG_QUALITY = 0.85;
const FPS_WINDOW_MS = 2000;
const STOP_WAIT_MS = 5000; // after "stop", how long to wait for the server's "done" before closing
const CLOSE_REASONS = {
  1003: "the server could not read the static image",
  1006: "the connection to the server was lost",
  1008: "the server refused the options",
  1011: "the server hit an internal error",
  1013: "the server has too many animation streams open; try again later",
};

export class WebcamPanel {
  constructor(info) {
    this.staticFile = null;
    this.ws = null;
    this.stream = null;
    this.video = $("webcam-video");
    this.canvas = $("webcam-canvas");
    this.capture = document.createElement("canvas");
    this.input = imageInput($("webcam-static"), {
      id: "webcam",
      what: "Static image",
      onFiles: ([file]) => {
        this.staticFile = file;
        this.input.show(file);
        setError("webcam-error");
      },
      onError: (error) => setError("webcam-error", `Static image: ${error.message}`),
    });
    for (const radio of document.querySelectorAll("input[name=webcam-mode]")) {
      radio.disabled = !info.modes.includes(radio.value);
    }
    $("webcam-start").addEventListener("click", () => this.start());
    $("webcam-stop").addEventListener("click", () => this.stop());
  }

  running(on) {
    $("webcam-start").disabled = on;
    $("webcam-stop").disabled = !on;
    for (const radio of document.querySelectorAll("input[name=webcam-mode]")) radio.disabled = on;
  }

  fail(message) {
    setError("webcam-error", message);
    $("webcam-status").textContent = "";
  }

  async start() {
    setError("webcam-error");
    this.stopping = false;
    if (!this.staticFile) {
      this.fail("Choose a static image first: the camera gives the pose, the static image the rest.");
      return;
    }
    if (!navigator.mediaDevices?.getUserMedia) {
      this.fail("The browser offers the camera only to secure pages: open this page as localhost (on the machine "
        + "that runs the server) or serve it over HTTPS.");
      return;
    }
    this.running(true);
    $("webcam-status").textContent = "Asking for the camera…";
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
      });
      this.video.srcObject = this.stream;
      await this.video.play();
    } catch (error) {
      this.release();
      this.fail(`No camera: ${error.message || error.name}.`);
      return;
    }
    if (this.stopping) { // Stop was pressed while the browser asked for the camera
      this.release();
      $("webcam-status").textContent = "";
      return;
    }
    this.connect(document.querySelector("input[name=webcam-mode]:checked").value);
  }

  connect(mode) {
    const url = new URL(`/v1/animate?mode=${mode}&format=jpeg`, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = (this.ws = new WebSocket(url));
    Object.assign(this, { sent: 0, inFlight: null, drawn: -1, answers: [], refused: false });
    for (const id of ["stat-fps", "stat-latency", "stat-server"]) $(id).textContent = "–";
    for (const id of ["stat-answered", "stat-dropped", "stat-failed"]) $(id).textContent = "0";
    ws.addEventListener("open", () => {
      ws.send(this.staticFile);
      $("webcam-status").textContent = "Encoding the static image…";
    });
    ws.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    ws.addEventListener("close", (event) => this.closed(event));
  }

  receive(message) {
    if (message.type === "ready") {
      $("webcam-status").textContent = `Animating (${message.mode} mode).`;
      this.sendFrame();
    } else if (message.type === "frame") {
      this.answered(message);
    } else if (message.type === "error" && message.seq !== undefined) {
      $("stat-failed").textContent = String(Number($("stat-failed").textContent) + 1);
      setError("webcam-error", `Frame ${message.seq}: ${message.message}`);
      this.inFlight = null;
      this.sendFrame();
    } else if (message.type === "error") {
      this.refused = true;
      this.fail(`The server refused: ${message.message}`);
    } else if (message.type === "done") {
      $("webcam-status").textContent = `Stopped: ${message.received} frames sent, ${message.answered} answered, `
        + `${message.dropped} dropped, ${message.failed} failed.`;
    }
  }

  // Capture the camera's current picture and send it, unless a frame is already on its way.
  sendFrame() {
    const ws = this.ws;
    if (this.stopping || this.inFlight || !ws || ws.readyState !== WebSocket.OPEN) return;
    const video = this.video;
    if (video.readyState < video.HAVE_CURRENT_DATA || !video.videoWidth) {
      setTimeout(() => this.sendFrame(), 50); // the camera has not produced a picture yet
      return;
    }
    // The model sees the largest centred square of a frame: send only that, at most CAPTURE_SIDE wide.
    const square = Math.min(video.videoWidth, video.videoHeight);
    const side = Math.min(square, CAPTURE_SIDE);
    this.capture.width = this.capture.height = side;
    this.capture.getContext("2d").drawImage(video, (video.videoWidth - square) / 2, (video.videoHeight - square) / 2,
      square, square, 0, 0, side, side);
    this.inFlight = { seq: this.sent++, at: performance.now() };
    this.capture.toBlob((blob) => {
      if (blob && ws.readyState === WebSocket.OPEN && !this.stopping) ws.send(blob);
    }, "image/jpeg", JPEG_QUALITY);
  }

  answered(message) {
    const now = performance.now();
    const latency = this.inFlight?.seq === message.seq ? now - this.inFlight.at : NaN;
    this.inFlight = null;
    this.sendFrame(); // the next frame goes out now; drawing this one overlaps with the server's work
    this.answers.push(now);
    while (now - this.answers[0] > FPS_WINDOW_MS) this.answers.shift();
    if (this.answers.length > 1) {
      const fps = (this.answers.length - 1) / ((now - this.answers[0]) / 1000);
      $("stat-fps").textContent = fps.toFixed(1);
    }
    $("stat-latency").textContent = formatMs(latency);
    $("stat-server").textContent = formatMs(message.compute_ms);
    $("stat-answered").textContent = String(message.answered);
    $("stat-dropped").textContent = String(message.dropped_total);
    $("stat-failed").textContent = String(message.failed);
    this.draw(message);
  }

  async draw(message) {
    const bytes = Uint8Array.from(atob(message.image), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: `image/${message.format}` }));
    if (message.seq > this.drawn) {
      this.drawn = message.seq;
      const context = this.canvas.getContext("2d");
      context.imageSmoothingEnabled = false;
      context.drawImage(bitmap, 0, 0, this.canvas.width, this.canvas.height);
    }
    bitmap.close();
  }

  stop() {
    const ws = this.ws;
    this.stopping = true;
    if (!ws) return; // still asking for the camera: start() sees the flag
    $("webcam-stop").disabled = true;
    $("webcam-status").textContent = "Stopping…";
    this.releaseCamera();
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "stop" }));
      this.stopTimer = setTimeout(() => ws.close(), STOP_WAIT_MS);
    } else {
      ws.close();
    }
  }

  closed(event) {
    clearTimeout(this.stopTimer);
    const expected = this.stopping || this.refused || event.code === 1000;
    this.ws = null;
    this.release();
    if (!expected) {
      this.fail(`The animation stopped: ${CLOSE_REASONS[event.code] || `connection closed (${event.code})`}.`);
    }
  }

  releaseCamera() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.video.srcObject = null;
  }

  release() {
    this.releaseCamera();
    this.running(false);
  }
}
