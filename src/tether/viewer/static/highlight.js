// Code block colouring for the languages agents show most. A token scanner, not a parser:
// comments, strings, numbers and keywords become <span class="tok-…"> with text nodes
// inside; anything it does not know stays plain text. Unknown languages are left plain.

const C_LIKE = {
  comment: String.raw`\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)`,
  string: String.raw`"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?`,
};
const HASH = { comment: String.raw`#[^\n]*`, string: C_LIKE.string };

const words = (text) => text.split(" ");
const LANGS = {
  js: {
    ...C_LIKE,
    string: C_LIKE.string + String.raw`|\x60(?:[^\x60\\]|\\[\s\S])*\x60?`,
    keywords: words(
      "async await break case catch class const continue default delete do else export extends false finally for from function if import in instanceof let new null of return static super switch this throw true try typeof undefined var void while yield interface type enum implements readonly as",
    ),
  },
  py: {
    ...HASH,
    string: String.raw`[rbfRBF]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$))|` + C_LIKE.string,
    keywords: words(
      "and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return self True try while with yield match case",
    ),
  },
  sh: {
    ...HASH,
    keywords: words("if then else elif fi for while until do done case esac in function return export local set unset echo cd exit source sudo"),
  },
  go: { ...C_LIKE, keywords: words("break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var nil true false") },
  rust: { ...C_LIKE, keywords: words("as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while Some None Ok Err") },
  c: { ...C_LIKE, keywords: words("auto break case char class const continue default do double else enum extern float for goto if int long namespace new private public protected return short signed sizeof static struct switch template this throw true false try typedef union unsigned using virtual void volatile while null nullptr boolean import package extends implements final") },
  json: { string: C_LIKE.string, keywords: words("true false null") },
  yaml: { ...HASH, keywords: words("true false null yes no on off") },
};
const ALIASES = {
  javascript: "js", jsx: "js", ts: "js", typescript: "js", tsx: "js", mjs: "js",
  python: "py", python3: "py", bash: "sh", shell: "sh", zsh: "sh", console: "sh", shellsession: "sh",
  golang: "go", rs: "rust", cpp: "c", "c++": "c", h: "c", java: "c", cs: "c", csharp: "c", kotlin: "c", swift: "c",
  toml: "yaml", yml: "yaml", ini: "yaml", jsonc: "json",
};

const compiled = new Map();
function scanner(name) {
  if (!compiled.has(name)) {
    const lang = LANGS[name];
    const parts = [];
    if (lang.comment) parts.push(`(${lang.comment})`);
    else parts.push("(?!)");
    parts.push(`(${lang.string})`);
    parts.push(String.raw`(\b(?:0[xX][\da-fA-F_]+|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?)\b)`);
    parts.push(`(\\b(?:${lang.keywords.map((k) => k.replace(/[+]/g, "\\$&")).join("|")})\\b)`);
    compiled.set(name, new RegExp(parts.join("|"), "g"));
  }
  return compiled.get(name);
}

const CLASSES = [null, "tok-com", "tok-str", "tok-num", "tok-kw"];

function span(className, text) {
  const node = document.createElement("span");
  node.className = className;
  node.textContent = text;
  return node;
}

/** Nodes (text and spans) for `code` in language `lang`. */
export function highlight(code, lang) {
  const key = String(lang || "").toLowerCase();
  if (key === "diff" || key === "patch") {
    return code.split(/(?<=\n)/).map((line) =>
      /^[+-](?![+-]{2} )/.test(line) ? span(line[0] === "+" ? "tok-add" : "tok-del", line) : /^@@/.test(line) ? span("tok-com", line) : line,
    );
  }
  const name = LANGS[key] ? key : ALIASES[key];
  if (!name || code.length > 100_000) return [code];
  const re = scanner(name);
  const out = [];
  let last = 0;
  re.lastIndex = 0;
  for (let m; (m = re.exec(code)); ) {
    if (m[0] === "") {
      re.lastIndex++;
      continue;
    }
    if (m.index > last) out.push(code.slice(last, m.index));
    const group = m.findIndex((value, index) => index > 0 && value !== undefined);
    out.push(span(CLASSES[group] ?? "", m[0]));
    last = m.index + m[0].length;
  }
  if (last < code.length) out.push(code.slice(last));
  return out;
}
