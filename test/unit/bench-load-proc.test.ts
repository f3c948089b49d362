import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { reniceProcess } from '../../scripts/bench-load/proc.js';

/** Field 19 of /proc/<pid>/task/<tid>/stat: the thread's nice value. */
function threadNices(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[16]);
  });
}

describe.runIf(process.platform === 'linux')('reniceProcess', () => {
  it('lowers the priority of every thread of a process, not only its main thread', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      const pid = child.pid!;
      // Node starts its V8 and libuv helper threads during startup; wait until they exist.
      const deadline = Date.now() + 5000;
      while (readdirSync(`/proc/${pid}/task`).length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(threadNices(pid).length).toBeGreaterThan(1);
      const changed = reniceProcess(pid, 7);
      expect(changed).toBe(threadNices(pid).length);
      expect(new Set(threadNices(pid))).toEqual(new Set([7]));
      // Never lowers a nice value (that needs a privilege the bench may not have): nothing changes.
      expect(reniceProcess(pid, 3)).toBe(0);
      expect(new Set(threadNices(pid))).toEqual(new Set([7]));
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('names the process when it is gone', () => {
    expect(() => reniceProcess(2 ** 22 + 1, 5)).toThrow(/4194305/);
  });
});
