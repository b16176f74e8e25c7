// A small WebGL point renderer for the latent map: one draw call per layer of points,
// pan and zoom by uniforms, hover by a grid index, box and lasso selection on the CPU.
"use strict";

const VERTEX = `
attribute vec2 a_pos;
attribute vec4 a_color;
attribute float a_state;
uniform vec2 u_center;
uniform vec2 u_scale;
uniform float u_size;
uniform float u_pass;
varying vec4 v_color;
void main() {
  float top = a_state > 1.5 ? 1.0 : 0.0;
  if (top != u_pass) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); gl_PointSize = 0.0; return; }
  gl_Position = vec4((a_pos - u_center) * u_scale, 0.0, 1.0);
  float dim = (a_state > 0.5 && a_state < 1.5) ? 1.0 : 0.0;
  gl_PointSize = u_size * (top > 0.5 ? 1.5 : 1.0);
  v_color = vec4(mix(a_color.rgb, vec3(0.86, 0.87, 0.9), dim * 0.45), a_color.a * (1.0 - dim * 0.25));
}`;

const FRAGMENT = `
precision mediump float;
varying vec4 v_color;
void main() {
  vec2 d = gl_PointCoord - vec2(0.5);
  if (dot(d, d) > 0.25) discard;
  gl_FragColor = v_color;
}`;

const GRID = 128;

class Scatter {
  constructor(canvas) {
    this.canvas = canvas;
    const gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: false });
    if (!gl) throw new Error("WebGL is not available in this browser.");
    this.gl = gl;
    this.program = this._program(VERTEX, FRAGMENT);
    this.buffers = { pos: gl.createBuffer(), color: gl.createBuffer(), state: gl.createBuffer() };
    this.n = 0;
    this.drawn = 0;
    this.center = [0, 0];
    this.zoom = 1;
  }

  _program(vertexSource, fragmentSource) {
    const gl = this.gl;
    const compile = (type, source) => {
      const shader = gl.createShader(type);
      gl.shaderSource(shader, source);
      gl.compileShader(shader);
      if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
      return shader;
    };
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl.VERTEX_SHADER, vertexSource));
    gl.attachShader(program, compile(gl.FRAGMENT_SHADER, fragmentSource));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    return program;
  }

  // xs, ys: Float32Array data coordinates of every point.
  setPoints(xs, ys) {
    const n = xs.length;
    this.n = n;
    this.xs = xs;
    this.ys = ys;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      if (xs[i] < x0) x0 = xs[i];
      if (xs[i] > x1) x1 = xs[i];
      if (ys[i] < y0) y0 = ys[i];
      if (ys[i] > y1) y1 = ys[i];
    }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    this.bounds = [x0, y0, x1, y1];
    const interleaved = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) { interleaved[2 * i] = xs[i]; interleaved[2 * i + 1] = ys[i]; }
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.pos);
    gl.bufferData(gl.ARRAY_BUFFER, interleaved, gl.STATIC_DRAW);
    this.setState(new Uint8Array(n));
    this._index();
    this.fit();
  }

  // rgba: Uint8Array of 4 bytes per point.
  setColors(rgba) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.color);
    gl.bufferData(gl.ARRAY_BUFFER, rgba, gl.STATIC_DRAW);
  }

  // state: Uint8Array per point, 0 normal, 1 dimmed, 2 highlighted (drawn on top).
  setState(state) {
    this.state = state;
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers.state);
    gl.bufferData(gl.ARRAY_BUFFER, state, gl.DYNAMIC_DRAW);
  }

  fit() {
    const [x0, y0, x1, y1] = this.bounds;
    this.center = [(x0 + x1) / 2, (y0 + y1) / 2];
    this.span = [(x1 - x0) * 1.06, (y1 - y0) * 1.06];
    this.zoom = 1;
  }

  _scale() {
    const w = this.canvas.clientWidth || 1, h = this.canvas.clientHeight || 1;
    // Keep the aspect ratio: one data unit is as many pixels across as up.
    const unit = Math.min(w / this.span[0], h / this.span[1]) * this.zoom;
    return [(2 * unit) / w, (2 * unit) / h];
  }

  resize() {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.round(this.canvas.clientWidth * ratio), h = Math.round(this.canvas.clientHeight * ratio);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
  }

  draw() {
    const gl = this.gl;
    this.resize();
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (!this.n) { this.drawn = 0; return; }
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.useProgram(this.program);
    const bind = (name, buffer, size, type, normalized) => {
      const location = gl.getAttribLocation(this.program, name);
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.enableVertexAttribArray(location);
      gl.vertexAttribPointer(location, size, type, normalized, 0, 0);
    };
    bind("a_pos", this.buffers.pos, 2, gl.FLOAT, false);
    bind("a_color", this.buffers.color, 4, gl.UNSIGNED_BYTE, true);
    bind("a_state", this.buffers.state, 1, gl.UNSIGNED_BYTE, false);
    const scale = this._scale();
    const ratio = window.devicePixelRatio || 1;
    const size = Math.max(2, Math.min(9, 3.2 * Math.sqrt(this.zoom) * (this.n > 20000 ? 0.8 : 1.3))) * ratio;
    gl.uniform2f(gl.getUniformLocation(this.program, "u_center"), this.center[0], this.center[1]);
    gl.uniform2f(gl.getUniformLocation(this.program, "u_scale"), scale[0], scale[1]);
    gl.uniform1f(gl.getUniformLocation(this.program, "u_size"), size);
    for (const pass of [0, 1]) {
      gl.uniform1f(gl.getUniformLocation(this.program, "u_pass"), pass);
      gl.drawArrays(gl.POINTS, 0, this.n);
    }
    this.drawn = this.n;
  }

  // Screen pixels (CSS, relative to the canvas) to data coordinates, and back.
  toData(px, py) {
    const [sx, sy] = this._scale();
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    return [this.center[0] + ((px / w) * 2 - 1) / sx, this.center[1] + (1 - (py / h) * 2) / sy];
  }

  toScreen(x, y) {
    const [sx, sy] = this._scale();
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    return [((x - this.center[0]) * sx + 1) * w / 2, (1 - (y - this.center[1]) * sy) * h / 2];
  }

  panBy(dxPixels, dyPixels) {
    const [sx, sy] = this._scale();
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    this.center[0] -= (dxPixels / w) * 2 / sx;
    this.center[1] += (dyPixels / h) * 2 / sy;
  }

  zoomAt(px, py, factor) {
    const before = this.toData(px, py);
    this.zoom = Math.max(0.5, Math.min(2000, this.zoom * factor));
    const after = this.toData(px, py);
    this.center[0] += before[0] - after[0];
    this.center[1] += before[1] - after[1];
  }

  _index() {
    const [x0, y0, x1, y1] = this.bounds;
    const cells = new Int32Array(this.n);
    const counts = new Int32Array(GRID * GRID + 1);
    for (let i = 0; i < this.n; i++) {
      const cx = Math.min(GRID - 1, Math.floor(((this.xs[i] - x0) / (x1 - x0)) * GRID));
      const cy = Math.min(GRID - 1, Math.floor(((this.ys[i] - y0) / (y1 - y0)) * GRID));
      cells[i] = cy * GRID + cx;
      counts[cells[i] + 1]++;
    }
    for (let c = 0; c < GRID * GRID; c++) counts[c + 1] += counts[c];
    const order = new Int32Array(this.n);
    const fill = counts.slice();
    for (let i = 0; i < this.n; i++) order[fill[cells[i]]++] = i;
    this.cellStart = counts;
    this.cellOrder = order;
  }

  // The point nearest to a screen position, within `radius` pixels, or -1.
  pick(px, py, radius = 8) {
    if (!this.n) return -1;
    const [x, y] = this.toData(px, py);
    const [rx] = this.toData(px + radius, py);
    const reach = Math.abs(rx - x);
    const [x0, y0, x1, y1] = this.bounds;
    const cw = (x1 - x0) / GRID, ch = (y1 - y0) / GRID;
    const ax = Math.max(0, Math.floor((x - reach - x0) / cw)), bx = Math.min(GRID - 1, Math.floor((x + reach - x0) / cw));
    const ay = Math.max(0, Math.floor((y - reach - y0) / ch)), by = Math.min(GRID - 1, Math.floor((y + reach - y0) / ch));
    let best = -1, bestDistance = reach * reach;
    for (let cy = ay; cy <= by; cy++) {
      for (let cx = ax; cx <= bx; cx++) {
        const c = cy * GRID + cx;
        for (let k = this.cellStart[c]; k < this.cellStart[c + 1]; k++) {
          const i = this.cellOrder[k];
          const d = (this.xs[i] - x) ** 2 + (this.ys[i] - y) ** 2;
          if (d <= bestDistance) { bestDistance = d; best = i; }
        }
      }
    }
    return best;
  }

  // Rows inside a data-space rectangle.
  inRect(xa, ya, xb, yb) {
    const x0 = Math.min(xa, xb), x1 = Math.max(xa, xb), y0 = Math.min(ya, yb), y1 = Math.max(ya, yb);
    const rows = [];
    for (let i = 0; i < this.n; i++) {
      if (this.xs[i] >= x0 && this.xs[i] <= x1 && this.ys[i] >= y0 && this.ys[i] <= y1) rows.push(i);
    }
    return rows;
  }

  // Rows inside a data-space polygon (even-odd rule), with a bounding-box test first.
  inPolygon(polygon) {
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const [x, y] of polygon) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    const rows = [];
    const m = polygon.length;
    for (let i = 0; i < this.n; i++) {
      const x = this.xs[i], y = this.ys[i];
      if (x < x0 || x > x1 || y < y0 || y > y1) continue;
      let inside = false;
      for (let a = 0, b = m - 1; a < m; b = a++) {
        const [xa, ya] = polygon[a], [xb, yb] = polygon[b];
        if ((ya > y) !== (yb > y) && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
      }
      if (inside) rows.push(i);
    }
    return rows;
  }
}

window.Scatter = Scatter;
