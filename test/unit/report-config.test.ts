import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseReportSettings } from '../../src/config.js';

describe('REPORTS_DIR, CALL_REPORT_URL, RECORD_AUDIO', () => {
  it('are off unless set', () => {
    expect(loadConfig({}).reports).toEqual({ reportsDir: null, callReportUrl: null, recordAudioDir: null });
  });

  it('reads all three; a report URL needs TOOLS_SECRET to be signed, and says so at start otherwise', () => {
    const config = loadConfig({ REPORTS_DIR: ' ./reports ', CALL_REPORT_URL: 'https://crm.example.test/calls', RECORD_AUDIO: '/var/rec' });
    expect(config.reports).toEqual({ reportsDir: './reports', callReportUrl: 'https://crm.example.test/calls', recordAudioDir: '/var/rec' });
    expect(config.startupWarnings).toContain("CALL_REPORT_URL is set but TOOLS_SECRET is not: reports are POSTed unsigned, so the receiver cannot tell them from anyone else's");
    const signed = loadConfig({ CALL_REPORT_URL: 'https://crm.example.test/calls', TOOLS_SECRET: 's' });
    expect(signed.startupWarnings.some((w) => w.startsWith('CALL_REPORT_URL'))).toBe(false);
  });

  it('refuses a report URL that would carry transcripts in clear text, or is no URL', () => {
    for (const url of ['http://crm.example.test/calls', 'ftp://x/y', 'not a url']) {
      const problems: string[] = [];
      parseReportSettings({ CALL_REPORT_URL: url }, 's', problems);
      expect(problems).toEqual([`CALL_REPORT_URL must be an https:// URL (http:// only on localhost, 127.x or [::1]), got "${url}"`]);
    }
    expect(() => loadConfig({ CALL_REPORT_URL: 'http://crm.example.test/calls' })).toThrow(ConfigError);
    const loopback: string[] = [];
    parseReportSettings({ CALL_REPORT_URL: 'http://127.0.0.1:8080/reports' }, 's', loopback);
    expect(loopback).toEqual([]);
  });
});
