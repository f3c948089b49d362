/** Twilio Media Streams frames as Twilio sends them, for the parser and replay-input tests. */

/** A complete `start` frame of stream MZ1 on call CA1, with the call token as its one custom parameter. */
export function startFrame(callToken = 'tok') {
  return {
    event: 'start',
    sequenceNumber: '1',
    streamSid: 'MZ1',
    start: {
      streamSid: 'MZ1',
      accountSid: 'AC1',
      callSid: 'CA1',
      tracks: ['inbound'],
      customParameters: { callToken },
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
    },
  };
}
