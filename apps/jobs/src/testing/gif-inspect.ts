/**
 * Reads the structure of a GIF file: version, logical screen size and the number of frames
 * (image descriptors), walking every block. Used by tests to check that a
 * render is a real, complete GIF; it throws on a truncated or malformed file.
 */
export interface GifInfo {
  readonly version: "GIF87a" | "GIF89a";
  readonly width: number;
  readonly height: number;
  readonly frames: number;
  /** Whether the file ends with the trailer byte right after the last block. */
  readonly complete: boolean;
}

export function inspectGif(bytes: Uint8Array): GifInfo {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const byte = (at: number) => {
    if (at >= bytes.length) throw new Error(`truncated GIF at byte ${at}`);
    return view.getUint8(at);
  };
  const version = new TextDecoder().decode(bytes.subarray(0, 6));
  if (version !== "GIF89a" && version !== "GIF87a") throw new Error("not a GIF");
  const width = view.getUint16(6, true);
  const height = view.getUint16(8, true);
  const packed = byte(10);
  let at = 13;
  if (packed & 0x80) at += 3 * 2 ** ((packed & 0x07) + 1);
  const skipSubBlocks = () => {
    for (let size = byte(at++); size !== 0; size = byte(at++)) at += size;
  };
  let frames = 0;
  for (;;) {
    const introducer = byte(at++);
    if (introducer === 0x3b) break;
    if (introducer === 0x21) {
      at++; // label
      skipSubBlocks();
    } else if (introducer === 0x2c) {
      const local = byte(at + 8);
      at += 9;
      if (local & 0x80) at += 3 * 2 ** ((local & 0x07) + 1);
      at++; // LZW minimum code size
      skipSubBlocks();
      frames++;
    } else {
      throw new Error(`unexpected block 0x${introducer.toString(16)} at ${at - 1}`);
    }
  }
  return { version, width, height, frames, complete: at === bytes.length };
}
