// The peer of scripts/peer-bench.sh: node oidc-provider doing the work of one
// fedgate exchange per request. POST /token with grant_type=client_credentials
// and an RS256 private_key_jwt client assertion: the provider verifies the
// assertion against the client's registered JWKS and mints an ES256 JWT
// access token (resource indicators, accessTokenFormat "jwt"). Its only
// storage is the built-in in-memory adapter (the assertion's jti goes into
// its replay-detection LRU; a JWT access token is not stored).
//
//   node server.mjs PORT CLIENT_JWKS_FILE
//
// Listens on 127.0.0.1 only. Prints "ready" on stdout once listening.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const [port, jwksFile] = process.argv.slice(2);
if (!port || !jwksFile) {
  console.error('usage: node server.mjs PORT CLIENT_JWKS_FILE');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = 'urn:fedgate:peer-bench';

function signingKey(type, options, kid, alg) {
  const jwk = generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' });
  return { ...jwk, kid, alg, use: 'sig' };
}

const provider = new Provider(issuer, {
  jwks: {
    keys: [
      signingKey('ec', { namedCurve: 'P-256' }, 'es-1', 'ES256'),
      // ID tokens (unused here) default to RS256: the provider wants a key for it.
      signingKey('rsa', { modulusLength: 2048 }, 'rs-1', 'RS256'),
    ],
  },
  clients: [{
    client_id: 'bench',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'RS256',
    jwks: JSON.parse(readFileSync(jwksFile, 'utf8')),
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'api',
  }],
  scopes: ['api'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: RESOURCE,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});

http.createServer(provider.callback()).listen(Number(port), '127.0.0.1', () => {
  console.log('ready');
});
