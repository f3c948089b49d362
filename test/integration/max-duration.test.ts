/**
 * MAX_CALL_DURATION_S on real sockets: the server's configured deadline reaches each call's
 * bridge, ends the call cleanly, and is told apart from every other end in logs and metrics.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, startRig } from '../support/call-rig.js';
import type { Rig } from '../support/call-rig.js';
import { loadCallerMulaw } from '../support/fixtures.js';

const MAX_CALL_MS = 800;

let rig: Rig | null = null;
afterEach(async () => {
  await rig?.close();
  rig = null;
});

describe('maximum call duration', () => {
  it('ends a call at the deadline: close 1000, reason max-duration in the log, outcome max-duration in the metrics', async () => {
    rig = await startRig({ config: { maxCallDurationMs: MAX_CALL_MS }, upstream: { speed: Number.POSITIVE_INFINITY } });
    // The caller would talk and listen for much longer: only the deadline can end this call.
    const caller = rig.caller({ audio: loadCallerMulaw('caller-question') });
    const startedAt = Date.now();
    await caller.start();
    await caller.done;
    const lastedMs = Date.now() - startedAt;

    expect(caller.endReason).toBe('server-closed');
    expect(caller.closeCode).toBe(1000);
    expect(lastedMs).toBeGreaterThanOrEqual(MAX_CALL_MS - 50);
    expect(lastedMs).toBeLessThan(MAX_CALL_MS + 2000);
    await eventually(() => rig!.server.calls.size === 0, 'call released');

    const ended = rig.logs.filter((l) => l.msg === 'call ended');
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ reason: 'max-duration', callSid: caller.callSid });
    const metrics = await rig.server.metrics.render();
    expect(metrics).toMatch(/^callbridge_calls_total\{outcome="max-duration"\} 1$/m);
    expect(metrics).toMatch(/^callbridge_active_calls 0$/m);
    await eventually(() => rig!.fake.connectionsOpen === 0, 'upstream session closed');
  });
});
