#!/usr/bin/env node
// A Flows application's backend receiving an invitation token (from the link's #token=… fragment):
//
//   1. verify it OFFLINE: signature against the console's public keys (/.well-known/jwks.json,
//      fetched once and cached by jose), algorithm EdDSA only, issuer, audience, lifetime;
//   2. redeem it through the tenant API (POST /api/v1/invitations/redeem) with the application's
//      API key, which returns the invitee's name and e-mails this one time.
//
// Step 1 costs no API call and turns away forged, altered and expired tokens early; step 2 is
// still needed, because only the console knows whether the invitation was used, revoked or
// resent, and only it can decrypt the invitee's data.
//
//   FLOWS_API_KEY=flk_… node verify-and-redeem.mjs <token>     (or the token on stdin: -)
//
// Exit status: 0 redeemed; 1 refused by the API (its problem `code` is printed); 2 the token
// failed offline verification (the API was not called); 3 usage, configuration or network error.

import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';

const EXIT = { redeemed: 0, refused: 1, unverified: 2, error: 3 };

const config = {
  consoleUrl: (process.env.FLOWS_CONSOLE_URL || 'http://127.0.0.1:8000').replace(/\/+$/, ''),
  apiKey: process.env.FLOWS_API_KEY || '',
  // The console's FLOWS_TOKEN_ISSUER and FLOWS_TOKEN_AUDIENCE (config/settings.py defaults).
  issuer: process.env.FLOWS_TOKEN_ISSUER || 'https://console.thepia.net',
  audience: process.env.FLOWS_TOKEN_AUDIENCE || 'flows.thepia.net',
  timeoutMs: Number(process.env.FLOWS_TIMEOUT_MS || 10000),
};

// Created once per process in a real backend: jose caches the key set, refetches it at most every
// 30 s when a token names a kid it does not know (a rotated key), and never for known kids.
const jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', config.consoleUrl), {
  timeoutDuration: config.timeoutMs,
});

/** The token's claims if its signature, algorithm, issuer, audience and lifetime hold; throws otherwise. */
async function verifyOffline(token) {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    algorithms: ['EdDSA'],
    issuer: config.issuer,
    audience: config.audience,
    clockTolerance: 30, // seconds of clock skew, as the console allows
    requiredClaims: ['sub', 'iat', 'nbf', 'exp', 'client', 'app', 'invitee'],
  });
  return { claims: payload, kid: protectedHeader.kid };
}

/** POST /api/v1/invitations/redeem: `{ok: true, body}` or `{ok: false, problem}` (RFC 9457 problem details). */
async function redeem(token) {
  const response = await fetch(`${config.consoleUrl}/api/v1/invitations/redeem`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${config.apiKey}`,
      'Content-Type': 'application/json',
      Accept: 'application/json, application/problem+json',
    },
    body: JSON.stringify({ token }),
    signal: AbortSignal.timeout(config.timeoutMs),
  });
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (response.ok && body) return { ok: true, body };
  const isProblem = (response.headers.get('content-type') || '').startsWith('application/problem+json');
  const problem = isProblem && body && typeof body.code === 'string'
    ? body
    : { status: response.status, code: 'unexpected_response', detail: `HTTP ${response.status} without problem details` };
  return { ok: false, problem, retryAfter: response.headers.get('retry-after') };
}

function printable(value) {
  // Data from a token or the API goes to a terminal: no control characters.
  return String(value ?? '').replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) =>
    `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function readToken(argument) {
  const raw = argument === '-' ? readFileSync(0, 'utf8') : argument;
  return (raw || '').trim();
}

async function main(argv) {
  if (argv.length !== 1 || argv[0] === '-h' || argv[0] === '--help') {
    console.error('usage: FLOWS_API_KEY=flk_… [FLOWS_CONSOLE_URL=http://127.0.0.1:8000] node verify-and-redeem.mjs <token|->');
    return EXIT.error;
  }
  const token = readToken(argv[0]);
  if (!token) {
    console.error('error: no token given');
    return EXIT.error;
  }
  if (!config.apiKey.startsWith('flk_')) {
    console.error('error: set FLOWS_API_KEY to an API key (flk_…) with the invitations:redeem scope');
    return EXIT.error;
  }

  let verified;
  try {
    verified = await verifyOffline(token);
  } catch (error) {
    if (error instanceof errors.JOSEError && !(error instanceof errors.JWKSTimeout)) {
      // Forged, altered, expired, for another audience…: refused here, the API is not called.
      console.log(`verification failed: ${error.code} (${printable(error.message)}); not sent to the API`);
      return EXIT.unverified;
    }
    console.error(`error: cannot fetch the console's public keys: ${printable(error.message)}`);
    return EXIT.error;
  }
  const { claims, kid } = verified;
  console.log(
    `verified offline: invitation ${printable(claims.sub)} for ${printable(claims.client)}/${printable(claims.app)}, ` +
      `expires ${new Date(claims.exp * 1000).toISOString()}, signed by key ${printable(kid)}`,
  );

  let outcome;
  try {
    outcome = await redeem(token);
  } catch (error) {
    console.error(`error: the tenant API did not answer: ${printable(error.message)}`);
    return EXIT.error;
  }
  if (!outcome.ok) {
    const { problem } = outcome;
    const retry = outcome.retryAfter ? `; retry after ${printable(outcome.retryAfter)} s` : '';
    console.log(`redeem refused: ${printable(problem.code)} (HTTP ${problem.status}): ${printable(problem.detail)}${retry}`);
    return EXIT.refused;
  }
  const { invitation, invitee } = outcome.body;
  const privateEmail = invitee.private_email ? `, private ${printable(invitee.private_email)}` : '';
  console.log(
    `redeemed: ${printable(invitation.code)} (${printable(invitation.application)}), ` +
      `used ${invitation.used_count} of ${invitation.max_uses}, permissions [${invitation.permissions.map(printable).join(', ')}]`,
  );
  console.log(`invitee: ${printable(invitee.name)} <${printable(invitee.company_email)}>${privateEmail}`);
  return EXIT.redeemed;
}

process.exitCode = await main(process.argv.slice(2));
