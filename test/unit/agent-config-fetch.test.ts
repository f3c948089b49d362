/**
 * The AGENT_CONFIG_URL client (src/agent/config-fetch.ts) against a real local HTTP receiver:
 * one request per call shared by webhook and stream, a bounded cache, and every failure a value.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AgentConfigFetcher, MAX_AGENT_CONFIG_BYTES } from '../../src/agent/config-fetch.js';
import type { AgentConfigFetcherOptions, AgentConfigRequest } from '../../src/agent/config-fetch.js';
import { HttpPeer } from '../support/peers.js';

const CALL: AgentConfigRequest = { callSid: 'CA1', from: '+15550001111', to: '+15552223333', direction: 'inbound' };

const peers: HttpPeer[] = [];
const fetchers: AgentConfigFetcher[] = [];
afterEach(async () => {
  for (const f of fetchers.splice(0)) f.close();
  for (const p of peers.splice(0)) await p.stop();
});

async function endpoint(status = 200, body = '{"voice":"verse"}', delayMs = 0): Promise<HttpPeer> {
  const peer = await new HttpPeer(async (_req, res) => {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  }).start();
  peers.push(peer);
  return peer;
}

function fetcher(peer: HttpPeer, options: Partial<AgentConfigFetcherOptions> = {}): AgentConfigFetcher {
  const f = new AgentConfigFetcher({ url: `${peer.baseUrl}/agent`, secret: null, timeoutMs: 1000, wallClock: Date.now, ...options });
  fetchers.push(f);
  return f;
}

describe('one request per call', () => {
  it('the stream takes the webhook\'s request: one POST, its answer', async () => {
    const peer = await endpoint();
    const f = fetcher(peer);
    f.prefetch(CALL);
    expect(await f.take(CALL)).toEqual({ outcome: 'answer', body: { voice: 'verse' } });
    expect(peer.requests).toHaveLength(1);
    expect(f.size).toBe(0);
  });

  it('a stream that describes the call otherwise, or finds nothing, asks itself', async () => {
    const peer = await endpoint();
    const f = fetcher(peer);
    f.prefetch(CALL);
    await f.take({ ...CALL, from: '+15559999999' });
    await f.take({ ...CALL, callSid: 'CA2' });
    expect(peer.requests.map((r) => JSON.parse(r.body) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ callSid: 'CA1', from: CALL.from }),
      expect.objectContaining({ callSid: 'CA1', from: '+15559999999' }),
      expect.objectContaining({ callSid: 'CA2' }),
    ]);
  });

  it('unsigned without a secret; signed with one', async () => {
    const peer = await endpoint();
    await fetcher(peer).take(CALL);
    await fetcher(peer, { secret: 's3cret' }).take(CALL);
    expect(peer.requests[0]?.headers['x-callbridge-signature']).toBeUndefined();
    expect(peer.requests[1]?.headers['x-callbridge-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
  });
});

describe('the cache is bounded', () => {
  it('in age: an answer whose stream did not come within the TTL is dropped', async () => {
    const peer = await endpoint();
    let now = 1_000_000;
    const f = fetcher(peer, { wallClock: () => now, ttlMs: 30_000 });
    f.prefetch(CALL);
    now += 30_001;
    await f.take(CALL);
    expect(peer.requests).toHaveLength(2);
  });

  it('in size: past maxEntries the oldest go', async () => {
    const peer = await endpoint();
    const f = fetcher(peer, { maxEntries: 2 });
    for (const callSid of ['CA1', 'CA2', 'CA3']) f.prefetch({ ...CALL, callSid });
    expect(f.size).toBe(2);
    await f.take({ ...CALL, callSid: 'CA1' });
    await f.take({ ...CALL, callSid: 'CA3' });
    // CA1 was evicted: asked again; CA3 was kept: not.
    expect(peer.requests.filter((r) => r.body.includes('"CA1"'))).toHaveLength(2);
    expect(peer.requests.filter((r) => r.body.includes('"CA3"'))).toHaveLength(1);
  });
});

describe('every failure is a value', () => {
  it.each([
    ['no answer in time', 200, '{}', 2000, { outcome: 'timeout', detail: 'no answer within 200 ms' }],
    ['a non-2xx status', 500, 'boom', 0, { outcome: 'error', detail: 'answered HTTP 500' }],
    ['a body that is not JSON', 200, 'not json', 0, { outcome: 'invalid', detail: expect.stringMatching(/^the answer is not JSON/) }],
    ['an oversize body', 200, `{"instructions":"${'x'.repeat(MAX_AGENT_CONFIG_BYTES)}"}`, 0, { outcome: 'error', detail: `answered more than ${MAX_AGENT_CONFIG_BYTES} bytes` }],
    ['an empty body', 200, '', 0, { outcome: 'answer', body: null }],
  ])('%s', async (_what, status, body, delayMs, expected) => {
    const peer = await endpoint(status, body, delayMs);
    expect(await fetcher(peer, { timeoutMs: 200 }).take(CALL)).toEqual(expected);
  });

  it('a request still running when the server closes is cancelled', async () => {
    const peer = await endpoint(200, '{}', 5000);
    const f = fetcher(peer);
    const pending = f.take(CALL);
    await new Promise((resolve) => setTimeout(resolve, 50));
    f.close();
    expect(await pending).toEqual({ outcome: 'error', detail: expect.stringMatching(/^cancelled: the server is closing/) });
  });
});
