/**
 * The registry of end-to-end scenarios. Each runs in its own namespace with
 * its own banger; `core` ones run in CI.
 *
 * @module
 */
import { check, type Scenario } from "./harness.ts";
import { LIFECYCLE_SCENARIOS } from "./lifecycle.ts";
import { NETWORK_SCENARIOS } from "./network_scenarios.ts";
import { FIRECRACKER_SCENARIOS } from "./firecracker_scenarios.ts";

/** One named scenario. */
export interface ScenarioDef {
  description: string;
  core: boolean;
  run(s: Scenario): Promise<void>;
}

/** The kernel release of the golden image (not the host's). */
const GUEST_KERNEL = /^6\.1\.\d+-\d+-cloud-amd64$/;

export const SCENARIOS: Record<string, ScenarioDef> = {
  "bare-run": {
    description:
      "vm run --rm -- uname -r prints the guest's kernel, not the host's",
    core: true,
    async run(s) {
      const host = (await s.sh("uname", ["-r"])).stdout.trim();
      const out = await s.banger(["vm", "run", "--rm", "--", "uname", "-r"], {
        expectCode: 0,
      });
      const guest = out.stdout.trim();
      check(
        GUEST_KERNEL.test(guest),
        `guest kernel "${guest}" is not the image's`,
      );
      check(guest !== host, `guest kernel equals the host's "${host}"`);
      await assertNothingLeft(s);
    },
  },
  "exit-status": {
    description:
      "the guest command's exit status is banger's, through shell syntax and quoting",
    core: true,
    async run(s) {
      const out = await s.banger([
        "vm",
        "run",
        "--rm",
        "--",
        "sh",
        "-c",
        'printf "%s|" "$@"; exit 7',
        "sh",
        "two words",
        "it's",
        "$HOME;|&",
      ]);
      check(out.code === 7, `exit status ${out.code}, expected 7`);
      check(
        out.stdout === "two words|it's|$HOME;|&|",
        `arguments arrived as "${out.stdout}"`,
      );
      await assertNothingLeft(s);
    },
  },
  "workspace": {
    description:
      "tracked edits ship, untracked files only with --include-untracked, history too",
    core: true,
    async run(s) {
      const repo = await s.gitRepo("project", {
        "README.md": "committed\n",
        "src/app.txt": "v1\n",
        ".gitignore": "secret.txt\n",
      });
      await Deno.writeTextFile(`${repo}/src/app.txt`, "v2 uncommitted\n");
      await Deno.writeTextFile(`${repo}/notes.txt`, "untracked\n");
      await Deno.writeTextFile(`${repo}/secret.txt`, "ignored\n");
      const probe = [
        "sh",
        "-c",
        "cat src/app.txt; test -e notes.txt && echo has-notes; test -e secret.txt && echo has-secret; git log --format=%s; git status --porcelain; pwd",
      ];
      const without = await s.banger([
        "vm",
        "run",
        "--rm",
        repo,
        "--",
        ...probe,
      ], { expectCode: 0 });
      check(
        without.stdout.includes("v2 uncommitted"),
        "the uncommitted edit is missing in the guest",
      );
      check(
        !without.stdout.includes("has-notes"),
        "an untracked file shipped without --include-untracked",
      );
      check(!without.stdout.includes("has-secret"), "an ignored file shipped");
      check(
        without.stdout.includes("initial"),
        "the guest repository has no history",
      );
      check(
        without.stdout.includes(" M src/app.txt"),
        "guest git status does not show the edit",
      );
      check(
        without.stdout.trim().endsWith("/root/repo"),
        "the command did not run in /root/repo",
      );
      check(
        without.stderr.includes("--include-untracked"),
        "no hint about skipped untracked files",
      );

      const withFlag = await s.banger(
        ["vm", "run", "--rm", "--include-untracked", repo, "--", ...probe],
        { expectCode: 0 },
      );
      check(
        withFlag.stdout.includes("has-notes"),
        "--include-untracked did not ship the untracked file",
      );
      check(
        !withFlag.stdout.includes("has-secret"),
        "an ignored file shipped with --include-untracked",
      );
      await assertNothingLeft(s);
    },
  },
  "concurrent-rm": {
    description:
      "two concurrent vm run --rm get distinct VMs and both clean up",
    core: false,
    async run(s) {
      const [a, b] = await Promise.all([
        s.banger([
          "vm",
          "run",
          "--rm",
          "--",
          "sh",
          "-c",
          "hostname; ip -4 -o addr show eth0",
        ]),
        s.banger([
          "vm",
          "run",
          "--rm",
          "--",
          "sh",
          "-c",
          "hostname; ip -4 -o addr show eth0",
        ]),
      ]);
      check(
        a.code === 0 && b.code === 0,
        `exit statuses ${a.code} and ${b.code}`,
      );
      const [hostA, addrA] = a.stdout.trim().split("\n");
      const [hostB, addrB] = b.stdout.trim().split("\n");
      check(hostA !== hostB, `both runs got the name "${hostA}"`);
      const ipOf = (line = "") => line.match(/inet (\S+)/)?.[1];
      check(
        ipOf(addrA) && ipOf(addrA) !== ipOf(addrB),
        `addresses ${addrA} / ${addrB}`,
      );
      await assertNothingLeft(s);
    },
  },
  "interrupt-rm": {
    description:
      "a signal to banger during vm run --rm ends the command and still deletes the VM",
    core: false,
    async run(s) {
      const child = s.spawnBanger([
        "vm",
        "run",
        "--rm",
        "--name",
        "sleeper",
        "--",
        "sleep",
        "600",
      ]);
      // Wait until the command runs in the guest, so the signal interrupts
      // it rather than the boot.
      const deadline = Date.now() + 240_000;
      let started = false;
      while (!started && Date.now() < deadline) {
        const probe = await s.banger([
          "vm",
          "ssh",
          "sleeper",
          "--",
          "pgrep",
          "-x",
          "sleep",
        ]);
        started = probe.code === 0;
        if (!started) await new Promise((r) => setTimeout(r, 1000));
      }
      check(started, "the guest command never started");
      child.kill("SIGINT");
      const status = await child.status;
      check(
        status.code === 130,
        `an interrupted run exited ${status.code}, not 130 (128 + SIGINT)`,
      );
      await assertNothingLeft(s);
    },
  },
  "dry-run": {
    description: "--dry-run prints the exact file list and creates nothing",
    core: true,
    async run(s) {
      const repo = await s.gitRepo("dry", { "a.txt": "a\n", "b/c.txt": "c\n" });
      await Deno.writeTextFile(`${repo}/u.txt`, "u\n");
      const out = await s.banger(
        ["vm", "run", "--dry-run", repo, "--", "true"],
        { expectCode: 0 },
      );
      check(
        out.stdout === "a.txt\nb/c.txt\n",
        `dry-run listed "${out.stdout}"`,
      );
      await assertUntouched(s);
    },
  },
  "invalid-input": {
    description:
      "an invalid name or size is refused up front and leaves nothing behind",
    core: true,
    async run(s) {
      const badName = await s.banger([
        "vm",
        "run",
        "--name",
        "Bad_Name",
        "--",
        "true",
      ]);
      check(badName.code === 1, `bad name exited ${badName.code}`);
      check(
        badName.stderr.includes('Invalid VM name "Bad_Name"'),
        `unclear error: ${badName.stderr}`,
      );
      const badSize = await s.banger([
        "vm",
        "run",
        "--memory",
        "-5G",
        "--",
        "true",
      ]);
      check(badSize.code === 1, `bad size exited ${badSize.code}`);
      check(
        badSize.stderr.includes("--memory"),
        `error does not name the flag: ${badSize.stderr}`,
      );
      const notRepo = await s.banger(["vm", "run", s.home, "--", "true"]);
      check(
        notRepo.stderr.includes("not inside a git repository"),
        `unclear error: ${notRepo.stderr}`,
      );
      await assertUntouched(s);
    },
  },
  ...LIFECYCLE_SCENARIOS,
  ...NETWORK_SCENARIOS,
  ...FIRECRACKER_SCENARIOS,
};

/**
 * Nothing at all was made: no daemon was started, no state or socket
 * exists. For commands that must fail, or only print, before any work.
 */
export async function assertUntouched(s: Scenario): Promise<void> {
  const made: string[] = [];
  for (const dir of ["var", "run"]) {
    try {
      for await (const entry of Deno.readDir(`${s.root}/${dir}`)) {
        made.push(`${dir}/${entry.name}`);
      }
    } catch {
      // Not there: nothing made.
    }
  }
  check(made.length === 0, `created before refusing: ${made.join(", ")}`);
}

/**
 * No VM row, tap, VM directory, VMM process or pinned host key may remain.
 */
export async function assertNothingLeft(s: Scenario): Promise<void> {
  const vms = await s.vms();
  check(vms.length === 0, `VMs left: ${vms.map((v) => v.name).join(", ")}`);
  const taps = await s.links("bgtap");
  check(taps.length === 0, `taps left: ${taps.join(", ")}`);
  const dirs = [];
  try {
    for await (const entry of Deno.readDir(`${s.root}/var/lib/banger/vms`)) {
      dirs.push(entry.name);
    }
  } catch {
    // No vms directory: nothing left.
  }
  check(dirs.length === 0, `VM directories left: ${dirs.join(", ")}`);
  const qemu = await s.sh("pgrep", ["-f", `${s.root}/var/lib/banger/vms`]);
  check(qemu.stdout.trim() === "", `VMM processes left: ${qemu.stdout.trim()}`);
  const pinned = await Deno.readTextFile(
    `${s.home}/.local/state/banger/ssh/known_hosts`,
  ).catch(() => "");
  check(pinned.trim() === "", `known_hosts lines left:\n${pinned}`);
}
