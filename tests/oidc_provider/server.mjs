// A real OpenID provider (panva's oidc-provider) on 127.0.0.1, for the single sign-on tests.
//
//   node server.mjs CONFIG.json
//
// CONFIG.json: {"clients": [oidc-provider client metadata...], "users": {"<sub>": {claims}}}.
// The users are read again at every look-up, so a test can change someone's groups between
// two sign-ins. It listens on a free port and prints one line, {"issuer": "http://..."}.
// Its sign-in page asks only for the account's name: the tests sign in as anyone they list.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const configPath = process.argv[2];
const readConfig = () => JSON.parse(readFileSync(configPath, 'utf8'));

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8">
<title>${escape(title)}</title></head><body><h1>${escape(title)}</h1>${body}</body></html>`;

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: readConfig().clients,
    cookies: { keys: ['oidc-provider-test-cookie-key'] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      groups: ['groups'],
    },
    async findAccount(ctx, sub) {
      const claims = readConfig().users[sub];
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...claims }) };
    },
    // Consent is implied: Webchat is the company's own application.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(ctx.oidc.params.scope);
      await grant.save();
      return grant;
    },
    // Required for every client, so that each sign-in in the tests proves Webchat sends it.
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        async logoutSource(ctx, form) {
          ctx.body = page(
            'Sign out of the test provider?',
            `${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>`,
          );
        },
      },
    },
  });

  const interaction = async (req, res) => {
    const match = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'POST' && match[2]) {
      const body = new URLSearchParams(await new Promise((resolve) => {
        let data = '';
        req.on('data', (chunk) => { data += chunk; });
        req.on('end', () => resolve(data));
      }));
      await provider.interactionFinished(req, res, { login: { accountId: body.get('login') } });
      return;
    }
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(page('Test provider sign-in', `<form method="post" action="/interaction/${escape(details.uid)}/login">
<label for="login">Account</label> <input id="login" name="login" autofocus>
<button type="submit">Continue</button></form>`));
  };

  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res).catch((error) => {
        res.statusCode = 500;
        res.end(String(error));
      });
    } else {
      callback(req, res);
    }
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
