import { deepStrictEqual } from "node:assert/strict";
import { shellJoin, shellQuote } from "./quote.ts";

Deno.test("shellQuote() leaves safe words bare", () => {
  deepStrictEqual(shellQuote("make"), "make");
  deepStrictEqual(shellQuote("/root/repo"), "/root/repo");
  deepStrictEqual(shellQuote(""), "''");
});

Deno.test("shellJoin() output is read back by a real shell as the same arguments", async () => {
  const args = [
    "two words",
    "it's",
    '"double"',
    "$HOME",
    "`id`",
    "a;b|c&d",
    "new\nline",
    "back\\slash",
    "*",
    "",
  ];
  const script = `for a in ${shellJoin(args)}; do printf '%s\\0' "$a"; done`;
  const out = await new Deno.Command("sh", { args: ["-c", script] }).output();
  const got = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
  deepStrictEqual(got, args);
});
