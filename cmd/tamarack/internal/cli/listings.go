package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tamarack-ai/tamarack/sdk"
)

func (a *app) listingsCmd() *cobra.Command {
	cmd := group("listings", "The marketplace catalogue: search, show, download; vendors: create, submit")
	cmd.AddCommand(a.listingsSearchCmd(), a.listingsShowCmd(), a.listingsDownloadCmd(), a.listingsCreateCmd(), a.listingsSubmitCmd())
	return cmd
}

// catalogue is a signed-in session when there are credentials, else an anonymous one: the catalogue is
// public, but a vendor sees its own pending versions and an entitled buyer its gated listings.
func (a *app) catalogue(ctx context.Context) (*session, error) {
	s, err := a.signedIn(ctx)
	if exitCode(err) == ExitAuth {
		return a.anonymous()
	}
	return s, err
}

func (a *app) listingsSearchCmd() *cobra.Command {
	var p sdk.GetMarketplaceListingsParams
	var kind, sort, gpu string
	var limit int
	cmd := &cobra.Command{
		Use:     "search [QUERY]",
		Short:   "Search the published catalogue",
		Example: "  tamarack listings search llama --kind model\n  tamarack listings search --kind compute --gpu H100",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.catalogue(cmd.Context())
			if err != nil {
				return err
			}
			if len(args) == 1 {
				p.Q = &args[0]
			}
			p.Kind, p.Sort, p.GpuModel = opt(kind), opt(sort), opt(gpu)
			if limit > 0 {
				p.Limit = &limit
			}
			r, err := s.api.GetMarketplaceListingsWithResponse(cmd.Context(), &p)
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, r.JSON200)
			}
			var rows [][]string
			for _, it := range r.JSON200.Items {
				price := "free"
				if m := it.PriceFromMicro; m > 0 {
					price = "from " + credits(int64(m))
				}
				rows = append(rows, []string{it.Slug, it.Kind, it.Title, it.Vendor.Name, price})
			}
			if len(rows) == 0 {
				fmt.Fprintln(a.Out, "No listings match.")
				return nil
			}
			return table(a.Out, []string{"SLUG", "KIND", "TITLE", "VENDOR", "PRICE (credits)"}, rows)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "model, dataset or compute")
	f.StringVar(&gpu, "gpu", "", "GPU model of compute listings, e.g. H100")
	f.StringVar(&sort, "sort", "", "relevance, newest or price")
	f.IntVar(&limit, "limit", 0, "at most this many (server default 50, max 200)")
	return cmd
}

func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (a *app) getListing(ctx context.Context, s *session, id string) (*sdk.Listing, error) {
	r, err := s.api.GetMarketplaceListingsIdWithResponse(ctx, id)
	if err := check(r, err); err != nil {
		return nil, err
	}
	return r.JSON200, nil
}

// version is the listing's published version, else the pending one its vendor and staff see.
func version(l *sdk.Listing) *sdk.Version {
	if l.PublishedVersion != nil {
		return l.PublishedVersion
	}
	return l.PendingVersion
}

func (a *app) listingsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show LISTING",
		Short:   "A listing (by slug or ID): its version, plans and files",
		Example: "  tamarack listings show aurora-h100",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.catalogue(cmd.Context())
			if err != nil {
				return err
			}
			l, err := a.getListing(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, l)
			}
			v := ptr(version(l))
			_ = fields(a.Out, "Title", v.Title, "Slug", l.Slug, "ID", l.Id, "Kind", l.Kind,
				"Vendor", l.Vendor.Name, "Status", l.Status,
				"Version", fmt.Sprintf("%d (%s)", v.Version, v.State), "Licence", ptr(v.License.Spdx),
				"Summary", v.Summary)
			if plans := v.Plans; len(plans) > 0 {
				fmt.Fprintln(a.Out)
				var rows [][]string
				for _, p := range plans {
					rows = append(rows, []string{p.Name, p.Kind, credits(int64(p.PriceMicro))})
				}
				_ = table(a.Out, []string{"PLAN", "KIND", "PRICE (credits)"}, rows)
			}
			if arts := v.Artifacts; len(arts) > 0 {
				fmt.Fprintln(a.Out)
				var rows [][]string
				for _, f := range arts {
					rows = append(rows, []string{f.Name, size(int64(f.SizeBytes)), f.Sha256})
				}
				_ = table(a.Out, []string{"FILE", "SIZE", "SHA256"}, rows)
			}
			return nil
		},
	}
}

func (a *app) listingsDownloadCmd() *cobra.Command {
	var file, dir string
	cmd := &cobra.Command{
		Use:     "download LISTING [--file NAME] [--dir DIR]",
		Short:   "Download a listing version's files (all, or one), each checked against its sha256",
		Example: "  tamarack listings download maple-vision --dir ./model\n  tamarack listings download maple-vision --file config.json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			l, err := a.getListing(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			arts := ptr(version(l)).Artifacts
			if file != "" {
				var one []sdk.Artifact
				for _, f := range arts {
					if f.Name == file {
						one = append(one, f)
					}
				}
				if len(one) == 0 {
					return &exitError{code: ExitNotFound, msg: fmt.Sprintf("%s has no file %q", args[0], file)}
				}
				arts = one
			}
			if len(arts) == 0 {
				return &exitError{code: ExitNotFound, msg: fmt.Sprintf("%s has no files to download", args[0])}
			}
			if dir == "" {
				dir = l.Slug
			}
			type done struct {
				Name   string `json:"name"`
				Path   string `json:"path"`
				Size   int64  `json:"size_bytes"`
				Sha256 string `json:"sha256"`
			}
			var out []done
			for _, f := range arts {
				path, n, err := a.download(cmd.Context(), s, f, dir)
				if err != nil {
					return err
				}
				out = append(out, done{Name: f.Name, Path: path, Size: n, Sha256: f.Sha256})
				if a.output != "json" {
					fmt.Fprintf(a.Out, "%s  %s  sha256 ok\n", path, size(n))
				}
			}
			if a.output == "json" {
				return printJSON(a.Out, map[string]any{"files": out})
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "only this file of the version")
	cmd.Flags().StringVar(&dir, "dir", "", "where to put the files (default: ./<slug>)")
	return cmd
}

// download fetches one artifact into dir through a temporary file, renamed only once its sha256 matched.
func (a *app) download(ctx context.Context, s *session, f sdk.Artifact, dir string) (string, int64, error) {
	name := filepath.Base(filepath.Clean("/" + f.Name)) // a server's name never escapes dir
	if name == "/" || name == "." {
		return "", 0, fmt.Errorf("artifact %s has no usable name", f.Id)
	}
	url := f.DownloadUrl
	if url == "" {
		url = "/api/v1/marketplace/artifacts/" + f.Id + "/download"
	}
	if strings.HasPrefix(url, "/") {
		url = s.base + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.http.Do(req) // a redirect to a signed URL on another host drops the header
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return "", 0, problemOf(resp.StatusCode, b)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*.part")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name())
	total := int64(f.SizeBytes)
	if total == 0 {
		total = resp.ContentLength
	}
	bar := newProgress(a.Err, name, total)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h, bar), resp.Body)
	bar.finish()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("download %s: %w", name, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want := strings.ToLower(f.Sha256); want != "" && got != want {
		return "", 0, fmt.Errorf("download %s: sha256 %s, but the listing says %s: the file was not kept", name, got, want)
	}
	path := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", 0, err
	}
	return path, n, nil
}

func (a *app) listingsCreateCmd() *cobra.Command {
	var in sdk.CreateListingRequest
	var from, license, summary, card string
	var tags []string
	cmd := &cobra.Command{
		Use:   "create --kind K --slug S --title T --license SPDX | --from listing.json",
		Short: "Vendors: create a listing in draft (from flags, or a JSON body as POST /listings takes it)",
		Example: "  tamarack listings create --kind model --slug maple-vision --title \"Maple Vision\" --license Apache-2.0 --summary \"…\"\n" +
			"  tamarack listings create --from listing.json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from != "" {
				b, err := os.ReadFile(from)
				if err != nil {
					return usageErr("--from: %v", err)
				}
				if err := json.Unmarshal(b, &in); err != nil {
					return usageErr("--from %s: %v", from, err)
				}
			} else {
				if in.Kind == "" || in.Slug == "" || in.Title == "" {
					return usageErr("say --kind, --slug and --title (or --from FILE)")
				}
				in.License = sdk.License{Spdx: opt(license)}
				in.Summary, in.CardMarkdown = opt(summary), opt(card)
				if len(tags) > 0 {
					in.Tags = &tags
				}
			}
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.PostMarketplaceListingsWithResponse(cmd.Context(), in)
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, r.JSON201)
			}
			fmt.Fprintf(a.Out, "Created %s (%s) in draft. Submit it for review with: tamarack listings submit %s\n",
				r.JSON201.Slug, r.JSON201.Id, r.JSON201.Slug)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Kind, "kind", "", "model, dataset or compute")
	f.StringVar(&in.Slug, "slug", "", "the listing's URL name")
	f.StringVar(&in.Title, "title", "", "its title")
	f.StringVar(&license, "license", "", "SPDX licence identifier, e.g. Apache-2.0")
	f.StringVar(&summary, "summary", "", "one paragraph")
	f.StringVar(&card, "card", "", "the card, in Markdown")
	f.StringSliceVar(&tags, "tag", nil, "a tag (repeat for several)")
	f.StringVar(&from, "from", "", "a JSON file with the whole request body instead of the flags")
	return cmd
}

func (a *app) listingsSubmitCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "submit LISTING",
		Short:   "Vendors: submit the draft (or changes_requested) version for staff review",
		Example: "  tamarack listings submit maple-vision",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			l, err := a.getListing(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			r, err := s.api.PostMarketplaceListingsIdSubmitWithResponse(cmd.Context(), l.Id)
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, json.RawMessage(r.Body))
			}
			fmt.Fprintf(a.Out, "Submitted %s for review.\n", args[0])
			return nil
		},
	}
}

func (a *app) reviewsCmd() *cobra.Command {
	cmd := group("reviews", "Staff: the listing review queue")
	var state string
	list := &cobra.Command{
		Use:   "list [--state submitted]",
		Short: "The review queue, oldest submission first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.GetMarketplaceReviewsWithResponse(cmd.Context(), &sdk.GetMarketplaceReviewsParams{State: opt(state)})
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, r.JSON200)
			}
			var rows [][]string
			for _, it := range r.JSON200.Items {
				rows = append(rows, []string{it.VersionId, it.Slug, fmt.Sprint(it.Version), it.Title,
					it.Vendor.Name, when(it.SubmittedAt)})
			}
			if len(rows) == 0 {
				fmt.Fprintln(a.Out, "The queue is empty.")
				return nil
			}
			return table(a.Out, []string{"VERSION ID", "LISTING", "V", "TITLE", "VENDOR", "SUBMITTED"}, rows)
		},
	}
	list.Flags().StringVar(&state, "state", "", "submitted (default), approved, rejected or changes_requested")
	var comment string
	decide := &cobra.Command{
		Use:     "decide VERSION_ID approve|reject|request_changes [--comment TEXT]",
		Short:   "Approve (publishes), reject or request changes; a comment is required unless approving",
		Example: "  tamarack reviews decide 01J… approve\n  tamarack reviews decide 01J… request_changes --comment \"add a licence URL\"",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[1] {
			case "approve", "reject", "request_changes":
			default:
				return usageErr("the decision is approve, reject or request_changes, not %q", args[1])
			}
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.PostMarketplaceReviewsVersionIdDecisionWithResponse(cmd.Context(), args[0],
				sdk.ReviewDecisionRequest{Decision: args[1], Comment: opt(comment)})
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, json.RawMessage(r.Body))
			}
			fmt.Fprintf(a.Out, "Recorded %s for version %s.\n", args[1], args[0])
			return nil
		},
	}
	decide.Flags().StringVar(&comment, "comment", "", "what the vendor reads")
	cmd.AddCommand(list, decide)
	return cmd
}

func (a *app) accessCmd() *cobra.Command {
	cmd := group("access", "Access to gated listings")
	var purpose string
	req := &cobra.Command{
		Use:     "request LISTING --purpose TEXT",
		Short:   "Ask a gated listing's vendor for access",
		Example: "  tamarack access request boreal-imagery --purpose \"train a wildfire detector\"",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(purpose) == "" {
				return usageErr("say why with --purpose")
			}
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			l, err := a.getListing(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			r, err := s.api.PostMarketplaceListingsIdAccessRequestsWithResponse(cmd.Context(), l.Id, sdk.CreateAccessRequestRequest{Purpose: purpose})
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, json.RawMessage(r.Body))
			}
			var ar sdk.AccessRequest
			_ = json.Unmarshal(r.Body, &ar)
			fmt.Fprintf(a.Out, "Access request %s is %s; the vendor decides.\n", ar.Id, ar.State)
			return nil
		},
	}
	req.Flags().StringVar(&purpose, "purpose", "", "what you want it for (the vendor reads it)")
	cmd.AddCommand(req)
	return cmd
}
