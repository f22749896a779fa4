// Shared helpers of the JavaScript suites: start a real server binary, wait for events.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(process.env.CARGO_TARGET_DIR)
  : path.join(repoRoot, "target");

/** The path of a binary built by `cargo build` (debug profile). */
export function binary(name, { example = false } = {}) {
  return path.join(targetDir, "debug", example ? "examples" : "", name);
}

/**
 * Starts `command` with `args` and resolves once it prints `listening on http://ADDR`.
 * Resolves to { url, port, child, stop() }. Rejects if the process exits first or takes too long.
 */
export function startServer(command, args = [], { env = {}, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} did not report listening within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (chunk) => {
      output += chunk.toString();
      const match = output.match(/listening on (http:\/\/[^\s]+)/);
      if (match) {
        clearTimeout(timer);
        child.stdout.off("data", onData);
        const url = match[1];
        resolve({
          url,
          port: Number(new URL(url).port),
          child,
          output: () => output,
          stop: (signal = "SIGKILL") => stopChild(child, signal),
        });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (chunk) => {
      output += chunk.toString();
      if (process.env.SERVER_LOGS) process.stderr.write(chunk);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited with ${code} before listening:\n${output}`));
    });
  });
}

export function stopChild(child, signal = "SIGKILL") {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

/** Resolves with the payload of the next `event` on `channel`, or rejects after `ms`. */
export function nextEvent(channel, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      channel.off(event, ref);
      reject(new Error(`no ${event} on ${channel.topic} within ${ms} ms`));
    }, ms);
    const ref = channel.on(event, (payload) => {
      clearTimeout(timer);
      channel.off(event, ref);
      resolve(payload);
    });
  });
}

/** Resolves with { status, response } of a push (or of `channel.join()` when given a Push). */
export function outcome(push) {
  return new Promise((resolve) => {
    push
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => resolve({ status: "timeout" }));
  });
}

/** Polls `predicate` every 10 ms until it is truthy; rejects with `message` after `ms`. */
export async function until(predicate, message, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out: ${message}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
