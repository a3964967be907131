// A line diff for tool-call previews: common prefix and suffix, then an LCS table on
// what is left. Past MAX_CELLS the middle shows as "all removed, then all added",
// which is still correct, only less minimal, and keeps a phone responsive.

const MAX_CELLS = 4_000_000;

function lines(text) {
  if (!text) return [];
  const out = text.split("\n");
  if (out[out.length - 1] === "") out.pop(); // a final newline is not an extra line
  return out;
}

/** [op, line] pairs, op one of " " (kept), "-" (removed), "+" (added). */
export function lineDiff(oldText, newText) {
  const a = lines(oldText);
  const b = lines(newText);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const head = a.slice(0, start).map((line) => [" ", line]);
  const tail = a.slice(endA).map((line) => [" ", line]);
  return [...head, ...middle(a.slice(start, endA), b.slice(start, endB)), ...tail];
}

function middle(a, b) {
  const n = a.length;
  const m = b.length;
  if (n * m > MAX_CELLS || n === 0 || m === 0) {
    return [...a.map((line) => ["-", line]), ...b.map((line) => ["+", line])];
  }
  // lcs[i * (m + 1) + j]: length of the LCS of a[i:] and b[j:].
  const lcs = new Uint32Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * (m + 1) + j] =
        a[i] === b[j] ? lcs[(i + 1) * (m + 1) + j + 1] + 1 : Math.max(lcs[(i + 1) * (m + 1) + j], lcs[i * (m + 1) + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push([" ", a[i++]]);
      j++;
    } else if (lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1]) {
      out.push(["-", a[i++]]);
    } else {
      out.push(["+", b[j++]]);
    }
  }
  while (i < n) out.push(["-", a[i++]]);
  while (j < m) out.push(["+", b[j++]]);
  return out;
}

/** Keep `context` unchanged lines around each change; longer unchanged runs become ["…", count]. */
export function collapse(diff, context = 3) {
  const near = new Uint8Array(diff.length);
  diff.forEach(([op], index) => {
    if (op === " ") return;
    for (let k = Math.max(0, index - context); k <= Math.min(diff.length - 1, index + context); k++) near[k] = 1;
  });
  const out = [];
  for (let index = 0; index < diff.length; ) {
    let end = index;
    while (end < diff.length && !near[end]) end++;
    // A run of one line costs as much room as its placeholder: show the line.
    if (end - index > 1) out.push(["…", end - index]);
    else if (end > index) out.push(diff[index]);
    if (end < diff.length) out.push(diff[end]);
    index = end + 1;
  }
  return out;
}
