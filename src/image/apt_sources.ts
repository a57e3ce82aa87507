/**
 * Finds the Debian mirrors the host's apt already uses, so that the golden
 * image is built from the same (reachable, possibly local) mirror.
 *
 * @module
 */

/** Mirrors for the main archive and for security updates. */
export interface DebianMirrors {
  main?: string;
  security?: string;
}

/**
 * Parses deb822 (`.sources`) and one-line (`.list`) apt source texts and
 * returns the first Debian main and security mirror URIs found.
 */
export function parseAptSources(texts: readonly string[]): DebianMirrors {
  const found: DebianMirrors = {};
  for (const text of texts) {
    for (const entry of entries(text)) {
      if (!entry.types.includes("deb")) continue;
      const security = entry.suites.some((s) => s.endsWith("-security"));
      const uri = entry.uris[0];
      if (!uri || !/^https?:\/\//.test(uri)) continue;
      if (security) found.security ??= uri;
      else if (/\/debian\/?$/.test(uri)) found.main ??= uri;
    }
  }
  return found;
}

interface Entry {
  types: string[];
  uris: string[];
  suites: string[];
}

function* entries(text: string): Generator<Entry> {
  if (/^\s*URIs:/im.test(text)) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (name: string) =>
        stanza.match(new RegExp(`^${name}:\\s*(.*)$`, "im"))?.[1]?.trim()
          .split(/\s+/) ?? [];
      if (/^Enabled:\s*no/im.test(stanza)) continue;
      yield {
        types: field("Types"),
        uris: field("URIs"),
        suites: field("Suites"),
      };
    }
    return;
  }
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").replace(/\[[^\]]*\]/, "").trim();
    const [type, uri, suite] = line.split(/\s+/);
    if (type && uri && suite) {
      yield { types: [type], uris: [uri], suites: [suite] };
    }
  }
}

/**
 * Reads the host's apt sources from `/etc/apt`. Returns no mirrors on hosts
 * without apt; requires `--allow-read` for `/etc/apt`.
 */
export async function hostDebianMirrors(
  aptDir = "/etc/apt",
): Promise<DebianMirrors> {
  const texts: string[] = [];
  const read = async (path: string) => {
    try {
      texts.push(await Deno.readTextFile(path));
    } catch {
      // A missing file simply contributes no mirror.
    }
  };
  await read(`${aptDir}/sources.list`);
  try {
    for await (const entry of Deno.readDir(`${aptDir}/sources.list.d`)) {
      if (/\.(sources|list)$/.test(entry.name)) {
        await read(`${aptDir}/sources.list.d/${entry.name}`);
      }
    }
  } catch {
    // No sources.list.d: nothing more to read.
  }
  return parseAptSources(texts);
}
