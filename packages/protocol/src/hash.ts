/** Small, isomorphic, non-cryptographic hashing used to make short cursor tags. */

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** 32-bit FNV-1a over the UTF-16 code units of `text`, with a seed to derive independent hashes. */
export function fnv1a(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** `value` as exactly `width` base-62 digits (the high part is dropped). */
export function base62(value: number, width: number): string {
  let out = "";
  let v = value;
  for (let i = 0; i < width; i++) {
    out = ALPHABET[v % 62] + out;
    v = Math.floor(v / 62);
  }
  return out;
}

export function isBase62(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (ALPHABET.indexOf(text[i] as string) < 0) return false;
  }
  return true;
}
