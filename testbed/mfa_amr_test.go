package testbed

import "github.com/tamarack-ai/tamarack/platform/jwtauth"

// mfaAMR marks test tokens as signed in with MFA, as staff must be (platform/web.RequireStaff) and
// organisations may require; tests of its absence sign their own tokens.
var mfaAMR = []string{jwtauth.AMRPassword, jwtauth.AMRMFA}
