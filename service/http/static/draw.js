// The drawing page: strokes on a canvas (pointer events: mouse, pen, finger) or a dropped image
// go to POST v1/draw, which prepares them exactly as `digits predict` does and answers with the
// 28x28 input the model received, the ten probabilities, the label and the model version.
"use strict";

const DEBOUNCE_MS = 120;  // while drawing, ask at most this often (plus once when a stroke ends)
const LINE_WIDTH = 22;    // pad pixels (280 px pad): about MNIST's stroke once scaled to 20 px

const pad = document.getElementById("canvas");
const ink = pad.getContext("2d");
const inputView = document.getElementById("input").getContext("2d");
const bars = document.getElementById("bars");
const labelView = document.getElementById("label");
const versionView = document.getElementById("version");
const statusView = document.getElementById("status");

let drawing = false;
let dirty = false;       // strokes since the last request
let timer = null;
let sequence = 0;        // answers to older requests than the newest shown are dropped
let shown = 0;

function clearPad() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  ink.lineCap = "round";
  ink.lineJoin = "round";
  ink.lineWidth = LINE_WIDTH;
  ink.strokeStyle = "#000";
}

function buildBars() {
  for (let digit = 0; digit < 10; digit++) {
    const row = document.createElement("li");
    row.innerHTML = `<span>${digit}</span><span class="bar"><span class="fill"></span></span>` +
      `<span class="pct">-</span>`;
    bars.appendChild(row);
  }
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width,
          (event.clientY - box.top) * pad.height / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  const [x, y] = point(event);
  ink.beginPath();  // a tap leaves a dot (a zero-length stroke would draw nothing)
  ink.arc(x, y, LINE_WIDTH / 2, 0, 2 * Math.PI);
  ink.fillStyle = ink.strokeStyle;
  ink.fill();
  ink.beginPath();
  ink.moveTo(x, y);
  dirty = true;
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = point(event);
  ink.lineTo(x, y);
  ink.stroke();
  dirty = true;
  schedule();
});

for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!drawing) return;
    drawing = false;
    dirty = true;  // the end of a stroke always sends the whole drawing
    schedule(0);
  });
}

function schedule(delay = DEBOUNCE_MS) {
  if (timer !== null && delay > 0) return;  // one request per debounce window while drawing
  clearTimeout(timer);
  timer = setTimeout(() => {
    timer = null;
    if (dirty) {
      dirty = false;
      const mine = ++sequence;  // numbered when the picture is taken, not when it is sent
      pad.toBlob((blob) => predict(blob, mine), "image/png");
    }
  }, delay);
}

async function predict(blob, mine = ++sequence) {
  let answer;
  try {
    const response = await fetch("v1/draw", {
      method: "POST", body: blob,
      headers: {"Content-Type": blob.type || "image/png", "X-Draw-Sequence": String(mine)},
    });
    answer = await response.json();
    if (!response.ok) throw new Error(explain(answer.error) || `HTTP ${response.status}`);
  } catch (error) {
    if (mine >= shown) statusView.textContent = String(error.message || error);
    return;
  }
  if (mine < shown) return;
  shown = mine;
  show(answer);
}

function explain(error) {
  // The preparation's own words name CLI flags; on the page, say what to do instead.
  if (error && error.includes("blank")) return "Nothing to read yet: the picture is blank.";
  return error;
}

function show(answer) {
  statusView.textContent = "";
  labelView.textContent = String(answer.label);
  versionView.textContent = `model ${answer.model_name} v${answer.model_version}`;
  const rows = bars.children;
  answer.probabilities.forEach((p, digit) => {
    rows[digit].classList.toggle("top", digit === answer.label);
    rows[digit].querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    rows[digit].querySelector(".pct").textContent = `${(100 * p).toFixed(1)}%`;
  });
  const pixels = inputView.createImageData(28, 28);
  answer.input.flat().forEach((value, i) => {
    pixels.data.set([value, value, value, 255], 4 * i);
  });
  inputView.putImageData(pixels, 0, 0);
}

function reset() {
  clearPad();
  dirty = false;
  shown = ++sequence;  // an answer still on its way is for the old drawing
  labelView.textContent = "?";
  versionView.textContent = "";
  statusView.textContent = "";
  inputView.clearRect(0, 0, 28, 28);
  for (const row of bars.children) {
    row.classList.remove("top");
    row.querySelector(".fill").style.width = "0";
    row.querySelector(".pct").textContent = "-";
  }
}

async function openFile(file) {
  if (!file) return;
  reset();
  try {  // show it on the pad, scaled to fit; the file's own bytes go to the server
    const picture = await createImageBitmap(file);
    const scale = Math.min(pad.width / picture.width, pad.height / picture.height);
    const w = picture.width * scale, h = picture.height * scale;
    ink.drawImage(picture, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  } catch (error) {
    // the server names what is wrong with the file
  }
  predict(file);
}

pad.addEventListener("dragover", (event) => {
  event.preventDefault();
  pad.classList.add("dragover");
});
pad.addEventListener("dragleave", () => pad.classList.remove("dragover"));
pad.addEventListener("drop", (event) => {
  event.preventDefault();
  pad.classList.remove("dragover");
  openFile(event.dataTransfer.files[0]);
});
document.getElementById("file").addEventListener("change", (event) => {
  openFile(event.target.files[0]);
  event.target.value = "";
});
document.getElementById("clear").addEventListener("click", reset);

buildBars();
clearPad();
