import { deepStrictEqual } from "node:assert/strict";
import { parseAptSources } from "./apt_sources.ts";

Deno.test("parseAptSources() finds main and security mirrors in deb822 files", () => {
  const deb822 = [
    "Types: deb",
    "URIs: http://mirror.example/debian",
    "Suites: bookworm bookworm-updates",
    "Components: main",
    "",
    "Types: deb",
    "URIs: http://mirror.example/debian-security",
    "Suites: bookworm-security",
    "Components: main",
  ].join("\n");
  deepStrictEqual(parseAptSources([deb822]), {
    main: "http://mirror.example/debian",
    security: "http://mirror.example/debian-security",
  });
});

Deno.test("parseAptSources() reads one-line sources and skips other archives", () => {
  const list = [
    "# a comment",
    "deb [arch=amd64] https://packages.example/apt stable main",
    "deb http://ftp.example/debian bookworm main contrib",
    "deb-src http://ftp.example/debian bookworm main",
  ].join("\n");
  deepStrictEqual(parseAptSources([list]), {
    main: "http://ftp.example/debian",
  });
});

Deno.test("parseAptSources() ignores disabled stanzas", () => {
  const text =
    "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n";
  deepStrictEqual(parseAptSources([text]), {});
});
