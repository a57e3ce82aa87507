/**
 * Opt-in NAT for guests, in nftables tables banger owns (`table ip banger`
 * and `table bridge banger`); nothing outside them is ever changed.
 *
 * Per guest (tap T, address A, bridge B), every rule carries the comment T
 * so it can be found and removed by the tap name alone, which is what the
 * daemon keeps in durable state:
 *
 * - `ip banger postrouting`: `ip saddr A oifname != B masquerade`
 * - `ip banger forward`: `iifname B oifname != B ip saddr A accept` and
 *   `oifname B ip daddr A ct state established,related accept`
 * - `bridge banger prerouting`: `iifname != T ip saddr A drop`, so only T
 *   can send as A; this is what ties the forward rules to the tap (at the
 *   IP layer a bridged packet's input interface is the bridge, not the tap).
 *
 * The forward chain ends with two drops (comment `isolate B`) of traffic
 * routed from the bridge elsewhere or from elsewhere to the bridge: guests
 * without `--nat` are never routed off the bridge, even on a host that
 * forwards for other reasons. Traffic between guests on the bridge is left
 * alone (with br_netfilter loaded it crosses this hook too).
 *
 * IP forwarding is switched on with `sysctl` (Deno refuses writes under
 * /proc without --allow-all) and never switched off: other software on the
 * host may rely on it, and banger cannot know the value it replaced.
 *
 * @module
 */
import { run } from "../util/exec.ts";
import { KeyedMutex } from "../util/mutex.ts";
import { NetworkStepError } from "./network.ts";

/** Name of banger's nftables tables (one in `ip`, one in `bridge`). */
export const NAT_TABLE = "banger";

/** One rule of `nft -j list table`, reduced to what banger looks at. */
interface ListedRule {
  family: string;
  chain: string;
  handle: number;
  comment?: string;
}

/** What a NAT request names, already validated by ./validate.ts. */
export interface NatTarget {
  tap: string;
  address: string;
  bridge: string;
}

// Every change lists then rewrites; the lock keeps two changes from
// deleting each other's handles.
const locks = new KeyedMutex();
const NFT = "nft";

/**
 * Creates banger's tables and base chains when missing, with the
 * isolation rules for `bridge`. Idempotent.
 */
export async function ensureNatBase(bridge: string): Promise<void> {
  await locks.run(NFT, () => ensureBaseLocked(bridge));
}

async function ensureBaseLocked(bridge: string): Promise<void> {
  // Declarative table and chain blocks only add what is missing.
  await nftScript(
    `Cannot create nftables table "${NAT_TABLE}"`,
    [
      `table ip ${NAT_TABLE} {`,
      "  chain postrouting { type nat hook postrouting priority srcnat; policy accept; }",
      "  chain forward { type filter hook forward priority filter; policy accept; }",
      "}",
      `table bridge ${NAT_TABLE} {`,
      "  chain prerouting { type filter hook prerouting priority filter; policy accept; }",
      "}",
    ],
  );

  const isolate = isolateComment(bridge);
  if ((await listRules()).some((r) => r.comment === isolate)) return;
  // Appended, so per-guest accepts (inserted at the top) come first.
  await nftScript(`Cannot isolate bridge "${bridge}"`, [
    `add rule ip ${NAT_TABLE} forward iifname "${bridge}" oifname != "${bridge}" drop comment "${isolate}"`,
    `add rule ip ${NAT_TABLE} forward iifname != "${bridge}" oifname "${bridge}" drop comment "${isolate}"`,
  ]);
}

/**
 * Turns NAT on for one guest: forwarding on, then its rules replaced in one
 * nft transaction, so calling it again leaves exactly one set of rules.
 */
export async function natUp(target: NatTarget): Promise<void> {
  await locks.run(NFT, async () => {
    // Routing between the bridge and the uplink needs forwarding on.
    await enableForwarding();

    await ensureBaseLocked(target.bridge);

    const { tap, address, bridge } = target;
    const stale = (await listRules()).filter((r) => r.comment === tap);
    await nftScript(`Cannot add NAT rules for tap "${tap}"`, [
      ...stale.map(deleteLine),
      `add rule ip ${NAT_TABLE} postrouting ip saddr ${address} oifname != "${bridge}" masquerade comment "${tap}"`,
      `insert rule ip ${NAT_TABLE} forward oifname "${bridge}" ip daddr ${address} ct state established,related accept comment "${tap}"`,
      `insert rule ip ${NAT_TABLE} forward iifname "${bridge}" oifname != "${bridge}" ip saddr ${address} accept comment "${tap}"`,
      `add rule bridge ${NAT_TABLE} prerouting iifname != "${tap}" ip saddr ${address} drop comment "${tap}"`,
    ]);
  });
}

/**
 * Removes every rule of the guest on `tap`. Removing rules that do not
 * exist (or a table that does not) succeeds. Returns how many went.
 */
export async function natDown(tap: string): Promise<number> {
  return await locks.run(NFT, async () => {
    const stale = (await listRules()).filter((r) => r.comment === tap);
    if (stale.length === 0) return 0;
    await nftScript(
      `Cannot remove NAT rules of tap "${tap}"`,
      stale.map(deleteLine),
    );
    return stale.length;
  });
}

/** Switches IPv4 forwarding on (this network namespace only). */
export async function enableForwarding(): Promise<void> {
  try {
    await run("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
  } catch (error) {
    throw new NetworkStepError("Cannot enable IPv4 forwarding", error);
  }
}

function isolateComment(bridge: string): string {
  return `isolate ${bridge}`;
}

function deleteLine(rule: ListedRule): string {
  return `delete rule ${rule.family} ${NAT_TABLE} ${rule.chain} handle ${rule.handle}`;
}

/** Rules of banger's tables; missing tables have none. */
async function listRules(): Promise<ListedRule[]> {
  const rules: ListedRule[] = [];
  for (const family of ["ip", "bridge"]) {
    const result = await run(
      "nft",
      ["-j", "list", "table", family, NAT_TABLE],
      { okCodes: [0, 1] },
    );
    if (result.code !== 0) continue;
    const items = (JSON.parse(result.stdout) as {
      nftables: { rule?: ListedRule }[];
    }).nftables;
    for (const item of items) {
      if (item.rule) rules.push({ ...item.rule, family });
    }
  }
  return rules;
}

/**
 * Applies `lines` as one nft transaction (all or nothing). The lines are
 * built only from validated names and addresses.
 */
async function nftScript(step: string, lines: string[]): Promise<void> {
  try {
    await run("nft", ["-f", "-"], { stdin: lines.join("\n") + "\n" });
  } catch (error) {
    throw new NetworkStepError(step, error);
  }
}
