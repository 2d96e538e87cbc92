// Starts the real daemon (the repository's .venv/bin/modelconfigd) on a free port over a fresh
// SQLite database, the way tests/e2e/process_helpers.py does, and learns the port from its
// serving line.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DAEMON = process.env.MODELCONFIGD ?? join(ROOT, ".venv/bin/modelconfigd");
// tests/e2e/process_helpers.py's SERVING_LINE.
const SERVING_LINE =
  /^modelconfigd serving on (?<host>\S+):(?<port>\d+) \(revision (?<revision>\d+)(, (?<workers>\d+) workers)?\)$/;
const START_TIMEOUT_MS = 30_000;

/**
 * A daemon serving on 127.0.0.1, port 0; `{tokens: {name: [role, token]}}` writes a tokens file
 * and serves with it. Resolves to `{address, stop()}`.
 */
export async function startDaemon({ tokens } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "modelconfig-node-"));
  const args = ["--listen", "127.0.0.1:0", "--database-url", `sqlite:///${dir}/x.db`];
  if (tokens) {
    const { createHash } = await import("node:crypto");
    const entries = Object.entries(tokens).map(
      ([name, [role, token]]) =>
        `[[tokens]]\nname = "${name}"\nrole = "${role}"\n` +
        `sha256 = "${createHash("sha256").update(token).digest("hex")}"\n`,
    );
    writeFileSync(join(dir, "tokens.toml"), entries.join("\n"));
    args.push("--tokens-file", join(dir, "tokens.toml"));
  }
  const child = spawn(DAEMON, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf-8").on("data", (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no serving line within ${START_TIMEOUT_MS} ms:\n${stderr}`)),
        START_TIMEOUT_MS,
      );
      createInterface({ input: child.stdout }).on("line", (line) => {
        const match = SERVING_LINE.exec(line);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match.groups.port));
        }
      });
      exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`modelconfigd exited (${code}) before serving:\n${stderr}`));
      });
    });
    return { address: `127.0.0.1:${port}`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
