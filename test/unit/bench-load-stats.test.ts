import { describe, expect, it } from 'vitest';
import {
  audibleAt,
  isCancelRace,
  judgeCall,
  matchBargeIns,
  matchFirstAudio,
  truncationErrors,
  type CallFacts,
  type ClearObs,
  type MediaArrivals,
  type PlaybackRun,
} from '../../scripts/bench-load/analysis.js';
import { quantile, slope, summarize, upperBound } from '../../scripts/bench-load/stats.js';

function media(rows: Array<[t: number, startsAtByte: number]>): MediaArrivals {
  return { length: rows.length, t: rows.map((r) => r[0]), startsAtByte: rows.map((r) => r[1]) };
}

describe('quantile (nearest rank)', () => {
  it('returns an observed sample, never an interpolation', () => {
    const xs = [5, 1, 4, 2, 3];
    expect(quantile(xs, 0.5)).toBe(3);
    expect(quantile(xs, 0)).toBe(1);
    expect(quantile(xs, 1)).toBe(5);
    expect(quantile(xs, 0.2)).toBe(1);
    expect(quantile(xs, 0.21)).toBe(2);
  });

  it('p99 of fewer than 100 samples is the maximum; of 200 it is the 198th', () => {
    const fifty = Array.from({ length: 50 }, (_, i) => i + 1);
    expect(quantile(fifty, 0.99)).toBe(50);
    const twoHundred = Array.from({ length: 200 }, (_, i) => i + 1);
    expect(quantile(twoHundred, 0.99)).toBe(198);
    expect(quantile(twoHundred, 0.5)).toBe(100);
  });

  it('ignores non-finite samples and is NaN without samples', () => {
    expect(quantile([Number.NaN, 2, Number.POSITIVE_INFINITY], 0.5)).toBe(2);
    expect(quantile([], 0.5)).toBeNaN();
    expect(() => quantile([1], 1.5)).toThrow(RangeError);
  });

  it('does not reorder its input', () => {
    const xs = [3, 1, 2];
    quantile(xs, 0.5);
    expect(xs).toEqual([3, 1, 2]);
  });
});

describe('summarize', () => {
  it('counts, p50, p99, max and mean', () => {
    expect(summarize([1, 2, 3, 10])).toEqual({ count: 4, p50: 2, p99: 10, max: 10, mean: 4 });
    const empty = summarize([]);
    expect(empty.count).toBe(0);
    expect(empty.p99).toBeNaN();
  });
});

describe('slope', () => {
  it('is the least-squares slope', () => {
    expect(slope([{ x: 0, y: 1 }, { x: 1, y: 3 }, { x: 2, y: 5 }])).toBeCloseTo(2, 12);
    // noise around a flat line
    expect(slope([{ x: 0, y: 10 }, { x: 1, y: 11 }, { x: 2, y: 9 }, { x: 3, y: 10 }])).toBeCloseTo(-0.2, 12);
  });

  it('is NaN without two distinct x', () => {
    expect(slope([{ x: 1, y: 1 }])).toBeNaN();
    expect(slope([{ x: 1, y: 1 }, { x: 1, y: 2 }])).toBeNaN();
  });
});

describe('upperBound', () => {
  it('finds the first element greater than x', () => {
    const xs = [1, 2, 2, 5];
    expect(upperBound(xs, 0)).toBe(0);
    expect(upperBound(xs, 2)).toBe(3);
    expect(upperBound(xs, 5)).toBe(4);
    expect(upperBound(xs, 3, 0, 2)).toBe(2);
  });
});

describe('matchBargeIns', () => {
  const playing: PlaybackRun[] = [{ startT: 0, endT: 1000, cleared: true }];

  it('times speech_started → clear, for a barge-in on audible audio', () => {
    const m = matchBargeIns([{ t: 500, responseActive: false }], [{ t: 503.5, playedBytes: 4000 }], playing, 100);
    expect(m.bargeIns).toEqual([{ t: 500, expected: true, clearT: 503.5, reactionMs: 3.5 }]);
    expect(m.unpromptedClears).toBe(0);
  });

  it('a polite turn (silence, no response) needs no clear; a missing clear on a barge-in is reported', () => {
    const m = matchBargeIns(
      [
        { t: 2000, responseActive: false },
        { t: 500, responseActive: true },
      ],
      [],
      [{ startT: 0, endT: 1500, cleared: false }],
      100,
    );
    expect(m.bargeIns.map((b) => [b.t, b.expected, b.clearT])).toEqual([
      [500, true, null],
      [2000, false, null],
    ]);
  });

  it('a clear that arrives after a later polite turn still answers its barge-in', () => {
    const m = matchBargeIns(
      [
        { t: 100, responseActive: true },
        { t: 300, responseActive: false },
      ],
      [{ t: 350, playedBytes: 0 }],
      [],
      100,
    );
    expect(m.bargeIns[0]?.clearT).toBe(350);
    expect(m.bargeIns[1]?.clearT).toBeNull();
  });

  it('a barge-in left without its clear does not take a later barge-in\'s clear', () => {
    const m = matchBargeIns(
      [
        { t: 100, responseActive: true },
        { t: 5000, responseActive: true },
      ],
      [{ t: 5001, playedBytes: 0 }],
      [],
      100,
    );
    expect(m.bargeIns.map((b) => b.reactionMs)).toEqual([null, 1]);
  });

  it('playback running out within the margin makes the clear optional; a second clear answers nothing', () => {
    const runs: PlaybackRun[] = [{ startT: 0, endT: 1050, cleared: false }];
    expect(audibleAt(runs, 1000, 100)).toBe(false);
    expect(audibleAt(runs, 900, 100)).toBe(true);
    expect(audibleAt(runs, 1100, 100)).toBe(false);
    const m = matchBargeIns(
      [{ t: 1000, responseActive: false }],
      [
        { t: 1002, playedBytes: 0 },
        { t: 1003, playedBytes: 0 },
      ],
      runs,
      100,
    );
    expect(m.bargeIns).toEqual([{ t: 1000, expected: false, clearT: 1002, reactionMs: 2 }]);
    expect(m.unpromptedClears).toBe(1);
  });

  it('a clear before any speech_started answers nothing', () => {
    const m = matchBargeIns([{ t: 10, responseActive: true }], [{ t: 5, playedBytes: 0 }], [], 100);
    expect(m.unpromptedClears).toBe(1);
    expect(m.bargeIns[0]?.clearT).toBeNull();
  });
});

describe('matchFirstAudio', () => {
  it('the first media after the first delta, per response', () => {
    const fa = matchFirstAudio(
      [
        { t: 1000, responseId: 'r2', itemId: 'i2' },
        { t: 100, responseId: 'r1', itemId: 'i1' },
      ],
      media([
        [50, 0],
        [101.5, 800],
        [120, 960],
        [1002, 4000],
      ]),
      [],
    );
    expect(fa.map((f) => [f.responseId, f.latencyMs, f.startsAtByte])).toEqual([
      ['r1', 1.5, 800],
      ['r2', 2, 4000],
    ]);
  });

  it('a response whose audio never reached the caller is not matched to the next one\'s', () => {
    const fa = matchFirstAudio(
      [
        { t: 100, responseId: 'r1', itemId: 'i1' },
        { t: 200, responseId: 'r2', itemId: 'i2' },
      ],
      media([[201, 0]]),
      [],
    );
    expect(fa.map((f) => f.mediaT)).toEqual([null, 201]);
  });

  it('nor across a clear', () => {
    const fa = matchFirstAudio([{ t: 100, responseId: 'r1', itemId: 'i1' }], media([[150, 0]]), [{ t: 120, playedBytes: 0 }]);
    expect(fa[0]?.mediaT).toBeNull();
  });
});

describe('truncationErrors', () => {
  const clears: ClearObs[] = [
    { t: 50, playedBytes: 400 },
    { t: 2000, playedBytes: 800 + 8 * 1200 },
  ];
  const fa = matchFirstAudio([{ t: 100, responseId: 'r1', itemId: 'i1' }], media([[100.4, 800]]), clears);

  it('compares audio_end_ms with what the caller played of the item by the clear', () => {
    const [check] = truncationErrors([{ t: 1999, itemId: 'i1', audioEndMs: 1197 }], fa, clears);
    expect(check?.playedMs).toBe(1200);
    expect(check?.errorMs).toBe(3);
  });

  it('an over-truncation counts as much as an under-truncation', () => {
    const [check] = truncationErrors([{ t: 1999, itemId: 'i1', audioEndMs: 1210 }], fa, clears);
    expect(check?.errorMs).toBe(10);
  });

  it('reports what it cannot match', () => {
    const checks = truncationErrors(
      [
        { t: 10, itemId: 'unknown', audioEndMs: 5 },
        { t: 10, itemId: 'i1', audioEndMs: 5 },
      ],
      fa,
      clears.slice(0, 1),
    );
    expect(checks.map((c) => c.unmatched)).toEqual(['item never reached the caller', 'no clear after the item began']);
    expect(checks.every((c) => c.errorMs === null)).toBe(true);
  });
});

describe('isCancelRace', () => {
  it('a race only when the named response was already done', () => {
    const ledger = { done: new Set(['r1']), lastResponseId: 'r2' };
    expect(isCancelRace('r1', ledger)).toBe(true);
    expect(isCancelRace('r2', ledger)).toBe(false);
    expect(isCancelRace('nope', ledger)).toBe(false);
  });

  it('without a response_id, judged on the newest response', () => {
    expect(isCancelRace(null, { done: new Set(['r1']), lastResponseId: 'r1' })).toBe(true);
    expect(isCancelRace(null, { done: new Set(), lastResponseId: null })).toBe(false);
  });
});

describe('judgeCall', () => {
  const ok: CallFacts = {
    connected: true,
    dropped: false,
    socketError: false,
    protocolErrors: 0,
    heardBytesInWindow: 8000,
    bargeIns: [
      { t: 1, expected: true, clearT: 2, reactionMs: 1 },
      { t: 3, expected: false, clearT: null, reactionMs: null },
    ],
    apiErrors: 0,
    truncations: [{ t: 1, itemId: 'i', audioEndMs: 100, playedMs: 104, errorMs: 4 }],
  };

  it('a correct call has no failures', () => {
    expect(judgeCall(ok, 20)).toEqual([]);
  });

  it('lists every check that failed', () => {
    expect(
      judgeCall(
        {
          ...ok,
          dropped: true,
          protocolErrors: 1,
          heardBytesInWindow: 0,
          bargeIns: [{ t: 1, expected: true, clearT: null, reactionMs: null }],
          apiErrors: 2,
          truncations: [
            { t: 1, itemId: 'i', audioEndMs: 100, playedMs: 150, errorMs: 50 },
            { t: 2, itemId: 'j', audioEndMs: 100, playedMs: null, errorMs: null, unmatched: 'no clear after the item began' },
          ],
        },
        20,
      ),
    ).toEqual(['dropped', 'Twilio protocol error', 'heard nothing', 'barge-in without clear', 'API error', 'truncation unmatched', 'truncation error over bound']);
  });

  it('a call that never connected is only that', () => {
    expect(judgeCall({ ...ok, connected: false, heardBytesInWindow: 0 }, 20)).toEqual(['not connected']);
  });
});
