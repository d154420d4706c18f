package web_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// A problem reads in the language Accept-Language asks for (English by default and for languages the server
// does not speak), says so in Content-Language, and keeps its code, status and field names.
func TestProblemsSpeakTheReadersLanguage(t *testing.T) {
	t.Parallel()
	type input struct {
		Email string `json:"email" validate:"required,email"`
		Name  string `json:"name" validate:"required,max=3"`
	}
	app := web.New(web.Config{})
	app.Post("/bind", func(c *fiber.Ctx) error {
		var in input
		return web.Bind(c, &in)
	})
	app.Get("/forbidden", func(c *fiber.Ctx) error { return problem.ErrForbidden })
	app.Get("/free", func(c *fiber.Ctx) error {
		return problem.ErrConflict.WithDetail("a detail nobody catalogued")
	})
	app.Get("/fields", func(c *fiber.Ctx) error {
		var f problem.Fields
		f.Add("name", "required", "is required")                // a catalogued text: translated by what it says
		f.Add("note", "odd", "an occurrence nobody catalogued") // stays in English
		return f.Err()
	})
	app.Use(web.NotFound)

	for _, tc := range []struct {
		name, method, path, body, lang string
		wantLang, wantCode             string
		wantTitle, wantDetail          string
		wantFields                     map[string]string
	}{
		{name: "validation fr", method: "POST", path: "/bind", body: `{"email":"x","name":"abcd"}`, lang: "fr-CA,fr;q=0.9",
			wantLang: "fr", wantCode: "validation_failed", wantTitle: "La requête contient des champs invalides.",
			wantDetail: "2 champs invalides", wantFields: map[string]string{"email": "doit être une adresse courriel", "name": "doit compter au plus 3 caractères"}},
		{name: "validation en", method: "POST", path: "/bind", body: `{"email":"x","name":"abcd"}`, lang: "en",
			wantLang: "en", wantCode: "validation_failed", wantTitle: "The request has invalid fields.",
			wantDetail: "2 invalid fields", wantFields: map[string]string{"email": "must be an e-mail address", "name": "must be at most 3 characters"}},
		{name: "unknown field fr", method: "POST", path: "/bind", body: `{"nope":1}`, lang: "fr",
			wantLang: "fr", wantCode: "validation_failed", wantTitle: "La requête contient des champs invalides.",
			wantDetail: "1 champ invalide", wantFields: map[string]string{"nope": "n'est pas un champ connu"}},
		{name: "malformed fr", method: "POST", path: "/bind", body: `{"email":`, lang: "fr",
			wantLang: "fr", wantCode: "malformed_json", wantTitle: "Le corps de la requête n'est pas du JSON valide.", wantDetail: "le JSON se termine trop tôt"},
		{name: "sentinel fr", method: "GET", path: "/forbidden", lang: "fr",
			wantLang: "fr", wantCode: "forbidden", wantTitle: "Votre rôle ne permet pas cette action.",
			wantDetail: "Vous êtes connecté, mais votre rôle ou votre organisation ne permet pas cette action ; un propriétaire ou un administrateur de votre organisation peut changer les rôles."},
		{name: "unknown language reads English", method: "GET", path: "/forbidden", lang: "de-DE",
			wantLang: "en", wantCode: "forbidden", wantTitle: "Your role does not allow this."},
		{name: "no header reads English", method: "GET", path: "/forbidden",
			wantLang: "en", wantCode: "forbidden", wantTitle: "Your role does not allow this."},
		{name: "free text stays English", method: "GET", path: "/free", lang: "fr",
			wantLang: "fr", wantCode: "conflict", wantTitle: "La ressource a changé ; réessayez.", wantDetail: "a detail nobody catalogued"},
		{name: "service field texts fr", method: "GET", path: "/fields", lang: "fr",
			wantLang: "fr", wantCode: "validation_failed", wantTitle: "La requête contient des champs invalides.",
			wantDetail: "2 champs invalides", wantFields: map[string]string{"name": "est obligatoire", "note": "an occurrence nobody catalogued"}},
		{name: "route fr", method: "GET", path: "/nowhere", lang: "fr",
			wantLang: "fr", wantCode: "route_not_found", wantTitle: "Route introuvable.",
			wantDetail: "aucune route pour GET /nowhere ; /api/openapi.json liste toutes les routes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.lang != "" {
				req.Header.Set("Accept-Language", tc.lang)
			}
			res, err := app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if got := res.Header.Get("Content-Language"); got != tc.wantLang {
				t.Errorf("Content-Language = %q, want %q", got, tc.wantLang)
			}
			if !strings.Contains(res.Header.Get("Vary"), "Accept-Language") {
				t.Errorf("Vary = %q: a cache must key the answer by language", res.Header.Get("Vary"))
			}
			var body struct {
				Code, Title, Detail string
				Fields              []problem.FieldError
			}
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if body.Code != tc.wantCode || body.Title != tc.wantTitle {
				t.Errorf("code %q title %q; want %q %q", body.Code, body.Title, tc.wantCode, tc.wantTitle)
			}
			if tc.wantDetail != "" && body.Detail != tc.wantDetail {
				t.Errorf("detail = %q, want %q", body.Detail, tc.wantDetail)
			}
			for _, f := range body.Fields {
				if want, ok := tc.wantFields[f.Field]; ok && f.Message != want {
					t.Errorf("field %s: %q, want %q", f.Field, f.Message, want)
				}
				delete(tc.wantFields, f.Field)
			}
			if len(tc.wantFields) > 0 {
				t.Errorf("fields missing from the answer: %v", tc.wantFields)
			}
		})
	}
}
