/**
 * The bridge's live JS heap, read through its inspector after a full garbage collection. Heap
 * "used" from /metrics includes garbage V8 has not collected yet (major GCs are rare on a small
 * heap), so a slow rise there says nothing about a leak; the heap left after a forced full GC does.
 * Needs the bridge started with --inspect=127.0.0.1:0 (one process: cluster workers would each
 * need their own inspector).
 */
import { WebSocket } from 'ws';

const INSPECTOR_TIMEOUT_MS = 10_000;

/** The inspector's address, from the line Node prints to stderr at start. */
export function inspectorUrlFrom(line: string): string | null {
  const m = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]+)/.exec(line);
  return m?.[1] ?? null;
}

/** MiB of JS heap still in use after two full collections (the second clears what finalizers freed). */
export async function liveHeapMiB(inspectorUrl: string): Promise<number> {
  const ws = new WebSocket(inspectorUrl);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let nextId = 1;
  const pending = new Map<number, (result: unknown) => void>();
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
  });
  const call = (method: string): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`inspector ${method}: no answer within ${INSPECTOR_TIMEOUT_MS} ms`)), INSPECTOR_TIMEOUT_MS);
      pending.set(id, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      ws.send(JSON.stringify({ id, method }));
    });
  try {
    await call('HeapProfiler.collectGarbage');
    await call('HeapProfiler.collectGarbage');
    const usage = (await call('Runtime.getHeapUsage')) as { usedSize?: unknown };
    if (typeof usage.usedSize !== 'number') throw new Error('inspector Runtime.getHeapUsage: no usedSize');
    return usage.usedSize / 2 ** 20;
  } finally {
    ws.close();
  }
}
