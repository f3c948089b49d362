import { describe, expect, it } from 'vitest';
import { runStep } from '../../scripts/bench-load/run.js';

// The load bench end to end, small: a real bridge (child process), the local model (child
// process) and the callers spread over two caller hosts. It checks the plumbing the figures rest
// on (calls placed on both hosts, paired with their upstream sessions, observed and collected
// back), not the figures themselves, which belong to benchmarks.
describe.runIf(process.platform === 'linux')('bench:load', () => {
  it('places calls over two caller processes, pairs each with its upstream session and collects what every call observed', async () => {
    const r = await runStep({
      calls: 4,
      seconds: 6,
      workers: null,
      rampMs: 200,
      maxTruncationErrorMs: 20,
      maxReactionP99Ms: 5,
      profileDir: null,
      liveHeap: false,
      modelNice: 10,
      bridgeRoot: null,
      callerProcesses: 2,
      progress: () => undefined,
    });
    expect(r.startErrors).toEqual([]);
    expect(r.dropped).toEqual([]);
    expect(r.unclaimedSessions).toBe(0);
    expect(r.protocolErrors).toBe(0);
    expect(r.apiErrors.real).toBe(0);
    expect(r.liveAtW1).toBe(4);
    expect(r.bridge.exit.code).toBe(0);
    expect(r.callerErrors).toBe(0);
    expect(r.outcomes).toBe('completed 4');
    // Snapshots came from both hosts: every call's stream ran through the whole window.
    expect(r.callMsWindow).toBeGreaterThan(4 * 5500);
    // Observations were collected back: every call heard the agent in the window, and its
    // played marks' echoes were timed; the hosts' CPU was read.
    expect(r.silentCalls).toBe(0);
    expect(r.echoLate.count).toBeGreaterThan(4);
    expect(r.loadgen.callerCores).toBeGreaterThan(0);
  }, 90_000);
});
