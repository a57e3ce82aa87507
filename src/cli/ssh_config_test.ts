import {
  BEGIN_MARKER,
  renderSshConfig,
  withBlock,
  withoutBlock,
} from "./ssh_config.ts";

function equal(actual: unknown, expected: unknown): void {
  if (actual !== expected) {
    throw new Error(`got:\n${actual}\nwant:\n${expected}`);
  }
}

const USER = "Host work\n  User me\n";
const INCLUDE = "/home/u/.config/banger/ssh_config";

Deno.test("withBlock() puts one Include first and is idempotent", () => {
  const once = withBlock(USER, INCLUDE);
  equal(
    once,
    `${BEGIN_MARKER}\nInclude ${INCLUDE}\n# <<< banger ssh-config <<<\n\n${USER}`,
  );
  equal(withBlock(once, INCLUDE), once);
  equal(once.split(BEGIN_MARKER).length, 2);
});

Deno.test("withoutBlock() restores the user's file byte for byte", () => {
  equal(withoutBlock(withBlock(USER, INCLUDE)), USER);
  equal(withoutBlock(withBlock("", INCLUDE)), "");
  equal(withoutBlock(USER), USER);
});

Deno.test("withoutBlock() refuses a block whose end marker is gone", () => {
  let message = "";
  try {
    withoutBlock(`${BEGIN_MARKER}\nInclude x\n${USER}`);
  } catch (error) {
    message = (error as Error).message;
  }
  equal(message.startsWith("Cannot edit ssh config"), true);
});

Deno.test("renderSshConfig() proxies through banger with quoted paths", () => {
  const text = renderSshConfig({
    key: "/var/lib/banger/ssh/id_ed25519",
    knownHosts: "/home/a b/.local/state/banger/ssh/known_hosts",
    launcher: { exec: "/opt/my banger/banger", prefix: [] },
    root: "/tmp/iso",
  });
  equal(text.includes("Host *.vm\n"), true);
  equal(
    text.includes(
      `  UserKnownHostsFile "/home/a b/.local/state/banger/ssh/known_hosts"`,
    ),
    true,
  );
  equal(
    text.includes(
      "  ProxyCommand env BANGER_ROOT=/tmp/iso '/opt/my banger/banger' internal ssh-proxy %h %p",
    ),
    true,
  );
});
