import type { CSSProperties } from "react";
import { hueOf, initials } from "../format.ts";

/** A coloured circle with the person's initials; decorative (the name is always next to it). */
export function Avatar({
  id,
  name,
  size = "md",
}: {
  id: string;
  name: string;
  size?: "sm" | "md";
}) {
  const style = { "--hue": String(hueOf(id || name)) } as CSSProperties;
  return (
    <span className={`avatar avatar-${size}`} style={style} aria-hidden="true">
      {initials(name)}
    </span>
  );
}
