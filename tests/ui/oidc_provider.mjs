// A real OpenID Provider for the single sign-on test: panva's OpenID-certified
// `oidc-provider` (npm), with its built-in development login page (any password;
// the login name picks one of the accounts below). Serves on 127.0.0.1.
//
//   node tests/ui/oidc_provider.mjs PORT ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI
//
// Prints "oidc provider listening" when ready.

import { createServer } from "node:http";
import Provider from "oidc-provider";

const [port, issuer, clientId, clientSecret, redirectUri] = process.argv.slice(2);

// The groups each test account carries in its ID token.
const ACCOUNTS = {
  alice: ["staff", "cctv-operators"],
  root: ["it-admins"],
  mallory: ["finance"],
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  pkce: { required: () => true },
  scopes: ["openid", "profile", "groups"],
  claims: { openid: ["sub"], profile: ["preferred_username", "name"], groups: ["groups"] },
  // Put the scopes' claims in the ID token, as Entra ID and Keycloak do for groups.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["test-only-cookie-key"] },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: id, groups: ACCOUNTS[id] || [] };
      },
    };
  },
  // A first-party client: grant what it asks for instead of a consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid profile groups");
    await grant.save();
    ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId, grant.jti);
    return grant;
  },
});
provider.on("server_error", (_ctx, err) => console.error("server_error", err));

createServer(provider.callback()).listen(Number(port), "127.0.0.1", () => {
  console.log("oidc provider listening");
});
