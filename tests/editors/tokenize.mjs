// Tokenize files with a TextMate grammar, the way VS Code does (vscode-textmate + oniguruma).
// Usage: node tokenize.mjs GRAMMAR.json FILE... ; prints JSON {file: [[{text, scopes}], ...per line]}.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.cwd(), "package.json"));
const oniguruma = require("vscode-oniguruma");
const vsctm = require("vscode-textmate");

const [grammarPath, ...files] = process.argv.slice(2);
const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm")).buffer;
await oniguruma.loadWASM(wasm);

const registry = new vsctm.Registry({
  onigLib: Promise.resolve({
    createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
    createOnigString: (s) => new oniguruma.OnigString(s),
  }),
  loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
});
const grammar = await registry.loadGrammar("source.bmad");

const out = {};
for (const file of files) {
  const lines = fs.readFileSync(file, "utf8").split(/\r?\n/);
  let state = vsctm.INITIAL;
  out[file] = lines.map((line) => {
    const result = grammar.tokenizeLine(line, state);
    state = result.ruleStack;
    return result.tokens.map((t) => ({ text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes }));
  });
}
process.stdout.write(JSON.stringify(out));
