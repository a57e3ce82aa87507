/**
 * The unit templates in systemd/ render into files `systemd-analyze verify`
 * accepts, with the settings that keep VMMs alive across restarts.
 */
import { deepStrictEqual, ok } from "node:assert/strict";

const UNITS = ["banger-daemon.service", "banger-helper.service"];

async function render(name: string, dir: string): Promise<string> {
  const template = await Deno.readTextFile(
    new URL(`../systemd/${name}`, import.meta.url),
  );
  const text = template.replaceAll("@BANGER_BIN@", "/bin/true").replaceAll(
    "@OWNER@",
    "root",
  );
  await Deno.writeTextFile(`${dir}/${name}`, text);
  return text;
}

Deno.test("systemd units keep VMMs alive when the services restart", async () => {
  const dir = await Deno.makeTempDir();
  for (const name of UNITS) {
    const text = await render(name, dir);
    ok(text.includes("KillMode=process"), `${name}: KillMode=process`);
    ok(text.includes("SendSIGKILL=no"), `${name}: SendSIGKILL=no`);
    ok(
      text.includes("RuntimeDirectoryPreserve=yes"),
      `${name}: RuntimeDirectoryPreserve=yes`,
    );
    ok(!text.includes("@"), `${name}: unrendered placeholder`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "systemd-analyze verify accepts the rendered units",
  ignore: !(await Deno.stat("/usr/bin/systemd-analyze").then(() =>
    true, () =>
    false)),
  async fn() {
    const dir = await Deno.makeTempDir();
    for (const name of UNITS) {
      await render(name, dir);
    }
    const out = await new Deno.Command("systemd-analyze", {
      args: [
        "verify",
        ...UNITS.map((u) =>
          `${dir}/${u}`
        ),
      ],
      env: { SYSTEMD_LOG_LEVEL: "warning" },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    // Only complaints about our own files count; the host's units are not ours.
    const ours = stderr.split("\n").filter((l) =>
      UNITS.some((u) => l.includes(u))
    );
    deepStrictEqual(ours, []);
    deepStrictEqual(out.code, 0, stderr);
    await Deno.remove(dir, { recursive: true });
  },
});
