import assert from "node:assert/strict";
import { escapeControl, quote } from "./quote.ts";

Deno.test("quote puts text in double quotes, escaping quotes, backslashes and control characters", () => {
  assert.equal(quote("out/tiny.mp4"), '"out/tiny.mp4"');
  assert.equal(quote('say "hi"'), '"say \\"hi\\""');
  assert.equal(quote("a\\b"), '"a\\\\b"');
  assert.equal(quote("red\x1b[31mred"), '"red\\x1b[31mred"');
  assert.equal(quote("two\nlines\r\tand\0"), '"two\\nlines\\r\\tand\\0"');
  assert.equal(quote(42), '"42"');
});

Deno.test("escapeControl escapes C0, DEL, C1, line separators and bidirectional overrides", () => {
  assert.equal(
    escapeControl("\x07\x7f\x9b\u2028\u202e\u2066ok"),
    "\\x07\\x7f\\x9b\\u2028\\u202e\\u2066ok",
  );
  // Printable text, other scripts and emoji are kept.
  assert.equal(escapeControl('é ü 漢字 🎬 "q" \\'), 'é ü 漢字 🎬 "q" \\');
});
