/**
 * How long `npm start` takes to be ready (the server listening), as a developer sees it: builds
 * first if asked (a stale build), then times `npm start` from spawn to the "Server listening" log
 * line, a few times, and prints the median. The service runs on the embedded model on a free port.
 *
 * Run: npm run ready-time [-- --runs 5]
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const READY_TIMEOUT_MS = 60_000;

function startOnce(): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' };
  for (const k of ['OPENAI_API_KEY', 'WORKERS', 'NODE_OPTIONS']) delete env[k];
  const startedAt = performance.now();
  const child = spawn('npm', ['start', '--silent'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      process.kill(-child.pid!, 'SIGKILL');
      reject(new Error(`not ready within ${READY_TIMEOUT_MS} ms`));
    }, READY_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`npm start exited (${code}) before it was ready`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.includes('Server listening at')) return;
      const readyMs = performance.now() - startedAt;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.once('exit', () => resolve(readyMs));
      // The whole group: npm and the node it started.
      process.kill(-child.pid!, 'SIGTERM');
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error(`--runs must be an integer 1-50, got "${values.runs}"`);
  const times: number[] = [];
  // The first start may build; the rest find the build up to date, which is what is measured.
  await startOnce();
  for (let i = 0; i < runs; i++) times.push(await startOnce());
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  process.stdout.write(`npm start ready in ${median.toFixed(0)} ms (median of ${runs}; build up to date; runs ${times.map((t) => t.toFixed(0)).join(', ')} ms)\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`ready-time failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
