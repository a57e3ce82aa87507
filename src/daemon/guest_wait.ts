/**
 * Waiting for a booting guest: first its console says the seed was applied
 * (the "boot" stage), then sshd accepts banger's key (the "ssh" stage). The
 * wait is bounded and gives up early when the VMM dies.
 *
 * @module
 */
import { GUEST_READY_MARKER } from "../image/guest_files.ts";
import { sshArgs, type SshIdentity } from "../ssh/options.ts";
import { run } from "../util/exec.ts";

/** What {@linkcode waitForGuest} needs. */
export interface GuestWait {
  name: string;
  ip: string;
  consoleLog: string;
  ssh: SshIdentity;
  /** The VM's shared ssh connection: the first answer leaves it up. */
  controlPath?: string | undefined;
  timeoutMs: number;
  alive: () => Promise<boolean>;
  /** Called once, when the console shows the guest configured itself. */
  onBoot?: () => void;
}

/** The outcome: ready, or why not with a message for people. */
export type GuestWaitResult =
  | { ok: true }
  | { ok: false; reason: "timeout" | "exited"; message: string };

const POLL_MS = 250;
/** Without the marker (a foreign image), ssh is still tried this often. */
const BLIND_SSH_EVERY_MS = 3000;

/** Polls the console and ssh until the guest answers or time runs out. */
export async function waitForGuest(w: GuestWait): Promise<GuestWaitResult> {
  const start = Date.now();
  const deadline = start + w.timeoutMs;
  let booted = false;
  let lastBlindTry = start;
  while (Date.now() < deadline) {
    if (!booted && (await consoleHas(w.consoleLog, GUEST_READY_MARKER))) {
      booted = true;
      w.onBoot?.();
    }
    const blind = Date.now() - lastBlindTry >= BLIND_SSH_EVERY_MS;
    if (booted || blind) {
      lastBlindTry = Date.now();
      if (await sshAnswers(w)) return { ok: true };
    }
    if (!(await w.alive())) {
      return {
        ok: false,
        reason: "exited",
        message:
          `VM "${w.name}" stopped while booting: its VMM exited; see "banger vm logs ${w.name}"`,
      };
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return {
    ok: false,
    reason: "timeout",
    message:
      `VM "${w.name}" is running but sshd did not answer at ${w.ip} within ${
        Math.round(w.timeoutMs / 1000)
      }s; the VM is left for inspection: see "banger vm logs ${w.name}", then "banger vm delete ${w.name}"`,
  };
}

async function consoleHas(path: string, marker: string): Promise<boolean> {
  try {
    return (await Deno.readTextFile(path)).includes(marker);
  } catch {
    return false;
  }
}

async function sshAnswers(w: GuestWait): Promise<boolean> {
  const result = await run(
    "ssh",
    [
      ...sshArgs(w.ssh, {
        name: w.name,
        ip: w.ip,
        connectTimeoutSeconds: 2,
        control: { path: w.controlPath, role: "master" },
      }),
      "true",
    ],
    { okCodes: [0, 255] },
  ).catch(() => ({ code: 255 }));
  return result.code === 0;
}
