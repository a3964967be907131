// Command output with its ANSI colours: SGR sequences (ESC [ … m) become styled <span>s
// around text nodes; every other escape or control sequence (cursor moves, titles, OSC 8
// links) is dropped, never obeyed, and the text is never read as HTML.

// ESC or the 8-bit CSI, then a CSI sequence; or OSC … BEL/ST; or any other 2-byte escape.
const ESCAPES = /(?:\x1b\[|\x9b)([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\|$)|\x1b[@-Z\\-_]?|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g;

const fresh = () => ({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false, strike: false });

function xterm256(n) {
  if (n < 16) return { index: n };
  if (n < 232) {
    const v = [0, 95, 135, 175, 215, 255];
    const k = n - 16;
    return { rgb: [v[Math.floor(k / 36)], v[Math.floor(k / 6) % 6], v[k % 6]] };
  }
  const g = 8 + (n - 232) * 10;
  return { rgb: [g, g, g] };
}

function apply(style, params) {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    if (c === 0) Object.assign(style, fresh());
    else if (c === 1) style.bold = true;
    else if (c === 2) style.dim = true;
    else if (c === 3) style.italic = true;
    else if (c === 4) style.underline = true;
    else if (c === 7) style.inverse = true;
    else if (c === 9) style.strike = true;
    else if (c === 22) style.bold = style.dim = false;
    else if (c === 23) style.italic = false;
    else if (c === 24) style.underline = false;
    else if (c === 27) style.inverse = false;
    else if (c === 29) style.strike = false;
    else if (c >= 30 && c <= 37) style.fg = { index: c - 30 };
    else if (c >= 90 && c <= 97) style.fg = { index: c - 90 + 8 };
    else if (c >= 40 && c <= 47) style.bg = { index: c - 40 };
    else if (c >= 100 && c <= 107) style.bg = { index: c - 100 + 8 };
    else if (c === 39) style.fg = null;
    else if (c === 49) style.bg = null;
    else if (c === 38 || c === 48) {
      let color = null;
      if (codes[i + 1] === 5 && i + 2 < codes.length) {
        color = xterm256(codes[i + 2] & 255);
        i += 2;
      } else if (codes[i + 1] === 2 && i + 4 < codes.length) {
        color = { rgb: codes.slice(i + 2, i + 5).map((v) => Math.max(0, Math.min(255, v | 0))) };
        i += 4;
      } else break;
      style[c === 38 ? "fg" : "bg"] = color;
    }
  }
}

const plain = (style) => !style.fg && !style.bg && !style.bold && !style.dim && !style.italic && !style.underline && !style.inverse && !style.strike;

function styled(text, style) {
  const node = document.createElement("span");
  const classes = [];
  const [fg, bg] = style.inverse ? [style.bg ?? { index: "bg" }, style.fg ?? { index: "fg" }] : [style.fg, style.bg];
  for (const [color, kind] of [[fg, "fg"], [bg, "bg"]]) {
    if (!color) continue;
    if (color.rgb) node.style[kind === "fg" ? "color" : "backgroundColor"] = `rgb(${color.rgb.join(",")})`; // CSSOM: allowed by the page's CSP
    else classes.push(`ansi-${kind}-${color.index}`);
  }
  for (const flag of ["bold", "dim", "italic", "underline", "strike"]) if (style[flag]) classes.push(`ansi-${flag}`);
  node.className = classes.join(" ");
  node.textContent = text;
  return node;
}

/** Text and <span> nodes for `text` (command output that may carry ANSI sequences). */
export function ansi(text) {
  const out = [];
  const style = fresh();
  let last = 0;
  const push = (piece) => {
    if (!piece) return;
    out.push(plain(style) ? piece : styled(piece, style));
  };
  ESCAPES.lastIndex = 0;
  for (let m; (m = ESCAPES.exec(text)); ) {
    push(text.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[2] === "m") apply(style, m[1]);
  }
  push(text.slice(last));
  // Merge neighbouring plain text so the output is a few nodes, not thousands.
  return out.reduce((acc, node) => {
    if (typeof node === "string" && typeof acc[acc.length - 1] === "string") acc[acc.length - 1] += node;
    else acc.push(node);
    return acc;
  }, []);
}

/** `text` without any escape sequence (for lengths and line counts). */
export function stripAnsi(text) {
  return text.replace(ESCAPES, "");
}
