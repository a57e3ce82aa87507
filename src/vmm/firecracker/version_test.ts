import assert from "node:assert/strict";
import { judgeVersion, parseVersionOutput, type Version } from "./version.ts";

const REAL_OUTPUT = `Firecracker v1.14.1

Supported snapshot data format versions: v1.0.0, v2.0.0, v3.0.0, v4.0.0, v5.0.0, v6.0.0
`;

Deno.test("parseVersionOutput() reads only the version line", () => {
  assert.deepEqual(parseVersionOutput(REAL_OUTPUT, "firecracker"), [1, 14, 1]);
});

Deno.test("parseVersionOutput() ignores snapshot versions and suffixes", () => {
  const dev =
    "Firecracker v1.15.0-dev\n\nSupported snapshot data format versions: v9.9.9\n";
  assert.deepEqual(parseVersionOutput(dev, "firecracker"), [1, 15, 0]);
  assert.deepEqual(parseVersionOutput("Jailer v1.7.0\n", "jailer"), [1, 7, 0]);
});

Deno.test("parseVersionOutput() refuses a first line that is not a version", () => {
  assert.throws(
    () =>
      parseVersionOutput(
        "Supported snapshot data format versions: v1.0.0\n",
        "fc",
      ),
    /Cannot read the version of "fc"/,
  );
  assert.throws(() => parseVersionOutput("", "fc"), /first line/);
});

Deno.test("judgeVersion() accepts the range, warns above it, refuses below", () => {
  const at = (v: Version) => judgeVersion(v, "firecracker").status;
  assert.equal(at([1, 5, 0]), "ok");
  assert.equal(at([1, 14, 1]), "ok");
  assert.equal(at([1, 10, 3]), "ok");
  assert.equal(at([1, 14, 2]), "newer");
  assert.equal(at([2, 0, 0]), "newer");
  assert.equal(at([1, 4, 9]), "too_old");
  assert.equal(at([0, 25, 0]), "too_old");
  const old = judgeVersion([1, 4, 1], "firecracker");
  assert.ok(old.status === "too_old" && old.error.includes("1.5.0"));
});
