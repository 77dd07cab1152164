/**
 * The "video": a looping animated GIF of a procedural, text-free scene. Everything in it —
 * colours, shapes, their orbits, the wave and the particles — is drawn from a PRNG seeded with
 * a SHA-256 of the prompt, so the same prompt always gives the same animation and different
 * prompts give different ones. Frames are drawn into an RGBA buffer, quantised to a 256-colour
 * palette and LZW-encoded one by one (gifenc); the caller hears after each encoded frame, which
 * is what progress measures.
 *
 * Pure and synchronous: it runs inside a worker thread (`render-worker.ts`), never on the
 * event loop that serves SSE.
 */
import { createHash } from "node:crypto";
import gifenc from "gifenc";
import type { RenderOutput, RenderSpec } from "./types.ts";

/** Accepted aspect ratios → [width units, height units]. */
export const ASPECT_RATIOS: Readonly<Record<string, readonly [number, number]>> = {
  "16:9": [16, 9],
  "9:16": [9, 16],
  "1:1": [1, 1],
  "4:3": [4, 3],
  "3:4": [3, 4],
};

/** Pixel size for an aspect ratio: the long side is `longSide`, both sides even. */
export function frameSize(
  aspectRatio: string,
  longSide: number,
): { width: number; height: number } {
  const ratio = ASPECT_RATIOS[aspectRatio];
  if (!ratio) throw new RangeError(`unsupported aspect ratio ${aspectRatio}`);
  const [w, h] = ratio;
  const even = (n: number) => Math.max(2, Math.round(n / 2) * 2);
  return w >= h
    ? { width: even(longSide), height: even((longSide * h) / w) }
    : { width: even((longSide * w) / h), height: even(longSide) };
}

export interface RenderHooks {
  /** Called after each frame is encoded, with frames done and the total. */
  onFrame?(done: number, total: number): void;
  /** Called before frame `index` (0-based) is drawn; may throw to stop the render. */
  beforeFrame?(index: number): void;
}

type Rgb = readonly [number, number, number];

interface Shape {
  readonly kind: "disc" | "ring" | "square";
  readonly color: Rgb;
  readonly cx: number;
  readonly cy: number;
  readonly ax: number;
  readonly ay: number;
  readonly fx: number;
  readonly fy: number;
  readonly phase: number;
  readonly size: number;
  readonly spin: number;
}

interface Scene {
  readonly top: Rgb;
  readonly bottom: Rgb;
  readonly wave: Rgb;
  readonly waveLevel: number;
  readonly waveAmp: number;
  readonly waveFreq: number;
  readonly waveSpeed: number;
  readonly shapes: readonly Shape[];
  readonly particles: readonly { x: number; y: number; speed: number; color: Rgb }[];
}

/** mulberry32: a small, fast, well-distributed 32-bit PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hsl(h: number, s: number, l: number): Rgb {
  const hue = (((h % 360) + 360) % 360) / 60;
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const x = c * (1 - Math.abs((hue % 2) - 1));
  const m = l - c / 2;
  const [r, g, b] =
    hue < 1
      ? [c, x, 0]
      : hue < 2
        ? [x, c, 0]
        : hue < 3
          ? [0, c, x]
          : hue < 4
            ? [0, x, c]
            : hue < 5
              ? [x, 0, c]
              : [c, 0, x];
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

/** Everything about the animation that the prompt decides. */
export function sceneFor(prompt: string): Scene {
  const digest = createHash("sha256").update(prompt.normalize("NFC")).digest();
  const random = prng(digest.readUInt32LE(0) ^ digest.readUInt32LE(4));
  const hue = random() * 360;
  const scheme = [30, 150, 180, 210][Math.floor(random() * 4)] ?? 180;
  const shapes: Shape[] = [];
  const kinds = ["disc", "ring", "square"] as const;
  const count = 3 + Math.floor(random() * 5);
  for (let i = 0; i < count; i++) {
    shapes.push({
      kind: kinds[Math.floor(random() * kinds.length)] ?? "disc",
      color: hsl(
        hue + scheme * (i % 2) + random() * 40,
        0.55 + random() * 0.4,
        0.45 + random() * 0.25,
      ),
      cx: 0.2 + random() * 0.6,
      cy: 0.2 + random() * 0.5,
      ax: 0.05 + random() * 0.25,
      ay: 0.05 + random() * 0.2,
      // Whole numbers of turns per loop, so the last frame flows into the first.
      fx: 1 + Math.floor(random() * 2),
      fy: 1 + Math.floor(random() * 3),
      phase: random() * Math.PI * 2,
      size: 0.06 + random() * 0.12,
      spin: Math.floor(random() * 3) - 1,
    });
  }
  const particles = [];
  const particleCount = 12 + Math.floor(random() * 24);
  for (let i = 0; i < particleCount; i++) {
    particles.push({
      x: random(),
      y: random() * 0.7,
      speed: 1 + Math.floor(random() * 2),
      color: hsl(hue + 60 + random() * 60, 0.3, 0.75 + random() * 0.2),
    });
  }
  return {
    top: hsl(hue, 0.45, 0.12 + random() * 0.1),
    bottom: hsl(hue + 40, 0.55, 0.3 + random() * 0.15),
    wave: hsl(hue + scheme, 0.5, 0.22 + random() * 0.15),
    waveLevel: 0.7 + random() * 0.15,
    waveAmp: 0.02 + random() * 0.06,
    waveFreq: 1 + Math.floor(random() * 4),
    waveSpeed: 1 + Math.floor(random() * 2),
    shapes,
    particles,
  };
}

function put(rgba: Uint8Array, i: number, c: Rgb, alpha: number): void {
  const o = i * 4;
  rgba[o] = ((rgba[o] ?? 0) + (c[0] - (rgba[o] ?? 0)) * alpha) | 0;
  rgba[o + 1] = ((rgba[o + 1] ?? 0) + (c[1] - (rgba[o + 1] ?? 0)) * alpha) | 0;
  rgba[o + 2] = ((rgba[o + 2] ?? 0) + (c[2] - (rgba[o + 2] ?? 0)) * alpha) | 0;
}

/** Draws frame `t` ∈ [0, 1) of `scene` into `rgba` (width × height × 4 bytes). */
export function drawFrame(
  scene: Scene,
  t: number,
  width: number,
  height: number,
  rgba: Uint8Array,
) {
  const turn = Math.PI * 2 * t;
  const unit = Math.min(width, height);
  for (let y = 0; y < height; y++) {
    const v = y / (height - 1);
    const sky: Rgb = [
      scene.top[0] + (scene.bottom[0] - scene.top[0]) * v,
      scene.top[1] + (scene.bottom[1] - scene.top[1]) * v,
      scene.top[2] + (scene.bottom[2] - scene.top[2]) * v,
    ];
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      const u = x / width;
      const surface =
        scene.waveLevel +
        scene.waveAmp * Math.sin(Math.PI * 2 * scene.waveFreq * u + turn * scene.waveSpeed);
      const c = v > surface ? scene.wave : sky;
      rgba[o] = c[0];
      rgba[o + 1] = c[1];
      rgba[o + 2] = c[2];
      rgba[o + 3] = 255;
    }
  }
  for (const p of scene.particles) {
    const px = Math.floor(((((p.x + t * p.speed) % 1) + 1) % 1) * width);
    const py = Math.floor(p.y * height + Math.sin(turn + p.x * 9) * 2);
    for (let dy = 0; dy < 2; dy++) {
      for (let dx = 0; dx < 2; dx++) {
        const x = px + dx;
        const y = py + dy;
        if (x >= 0 && x < width && y >= 0 && y < height) put(rgba, y * width + x, p.color, 0.8);
      }
    }
  }
  for (const s of scene.shapes) drawShape(s, turn, width, height, unit, rgba);
}

function drawShape(
  s: Shape,
  turn: number,
  width: number,
  height: number,
  unit: number,
  rgba: Uint8Array,
): void {
  const cx = (s.cx + s.ax * Math.sin(turn * s.fx + s.phase)) * width;
  const cy = (s.cy + s.ay * Math.cos(turn * s.fy + s.phase)) * height;
  const r = s.size * unit * (1 + 0.15 * Math.sin(turn * 2 + s.phase));
  const angle = turn * s.spin + s.phase;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const x0 = Math.max(0, Math.floor(cx - r * 1.5));
  const x1 = Math.min(width - 1, Math.ceil(cx + r * 1.5));
  const y0 = Math.max(0, Math.floor(cy - r * 1.5));
  const y1 = Math.min(height - 1, Math.ceil(cy + r * 1.5));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      let edge: number;
      if (s.kind === "square") {
        // Signed distance to a rotated square, in pixels.
        const rx = Math.abs(dx * cos + dy * sin);
        const ry = Math.abs(-dx * sin + dy * cos);
        edge = Math.max(rx, ry) - r * 0.8;
      } else {
        const d = Math.sqrt(dx * dx + dy * dy);
        edge = s.kind === "ring" ? Math.abs(d - r * 0.8) - r * 0.2 : d - r;
      }
      // One pixel of antialiasing at the edge.
      const alpha = edge <= -1 ? 1 : edge >= 0 ? 0 : -edge;
      if (alpha > 0) put(rgba, y * width + x, s.color, alpha * 0.92);
    }
  }
}

/** Renders and encodes the whole animation, frame by frame. */
export function renderGif(spec: RenderSpec, hooks: RenderHooks = {}): RenderOutput {
  const { width, height, frames } = spec;
  const scene = sceneFor(spec.prompt);
  const rgba = new Uint8Array(width * height * 4);
  // A frame is 1–2 bytes per pixel once compressed; start big enough to rarely regrow.
  const gif = gifenc.GIFEncoder({ initialCapacity: Math.max(4096, width * height * frames) });
  for (let index = 0; index < frames; index++) {
    hooks.beforeFrame?.(index);
    drawFrame(scene, index / frames, width, height, rgba);
    const palette = gifenc.quantize(rgba, 256);
    const indexed = gifenc.applyPalette(rgba, palette);
    gif.writeFrame(indexed, width, height, { palette, delay: spec.delayMs, repeat: 0 });
    hooks.onFrame?.(index + 1, frames);
  }
  gif.finish();
  return { bytes: gif.bytes(), width, height, frames };
}
