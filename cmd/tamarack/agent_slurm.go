package main

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/tamarack-ai/tamarack/testbed"
	"github.com/tamarack-ai/tamarack/testbed/backend/slurm"
)

// The Slurm side of `tamarack agent run --backend slurm`: the agent runs on a login node, submits each
// sandbox as a job through slurmrestd, and unpacks images into a directory the compute nodes share.

// slurmFlags are `agent run`'s Slurm flags, each defaulting to its TAMARACK_AGENT_SLURM_* variable.
type slurmFlags struct {
	url, user, tokenFile, partition, account, qos, gres, dir, images, step *string
}

func addSlurmFlags(fs *flag.FlagSet) slurmFlags {
	return slurmFlags{
		url:       fs.String("slurm-url", os.Getenv("TAMARACK_AGENT_SLURM_URL"), "slurm: slurmrestd's base URL, e.g. http://login1:6820 (required)"),
		user:      fs.String("slurm-user", os.Getenv("TAMARACK_AGENT_SLURM_USER"), "slurm: the Slurm user jobs are submitted as, never root (required)"),
		tokenFile: fs.String("slurm-token-file", os.Getenv("TAMARACK_AGENT_SLURM_TOKEN_FILE"), "slurm: a file holding that user's JWT, read again for every call so a cron job can refresh it (`scontrol token username=USER lifespan=SECONDS`, whose SLURM_JWT=… line it may hold as printed) (required)"),
		partition: fs.String("slurm-partition", os.Getenv("TAMARACK_AGENT_SLURM_PARTITION"), "slurm: the jobs' partition; empty: Slurm's default (a pool's slurm.partition setting overrides it)"),
		account:   fs.String("slurm-account", os.Getenv("TAMARACK_AGENT_SLURM_ACCOUNT"), "slurm: the jobs' account; empty: the user's default (pool setting slurm.account overrides it)"),
		qos:       fs.String("slurm-qos", os.Getenv("TAMARACK_AGENT_SLURM_QOS"), "slurm: the jobs' QOS; empty: the default (pool setting slurm.qos overrides it)"),
		gres:      fs.String("slurm-gres", os.Getenv("TAMARACK_AGENT_SLURM_GRES"), "slurm: GPU models' GRES types, MODEL=TYPE[,MODEL=TYPE…] (e.g. h100-80gb=h100); a model not listed is asked for by its own name"),
		dir:       fs.String("slurm-dir", os.Getenv("TAMARACK_AGENT_SLURM_DIR"), "slurm: the job directories' root, on a filesystem the compute nodes share (default <data>/slurm-jobs)"),
		images:    fs.String("slurm-images", os.Getenv("TAMARACK_AGENT_SLURM_IMAGES"), "slurm: where images are unpacked, on a filesystem the compute nodes share, readable there by the job's user (default <data>/images)"),
		step:      fs.String("slurm-step", envOr("TAMARACK_AGENT_SLURM_STEP", "sudo -n /usr/local/bin/tamarack"), "slurm: the command that runs tamarack as root on a compute node, split on spaces"),
	}
}

// slurmName is what Slurm accepts as a partition, account, QOS or GRES type name here (as the testbed checks
// a pool's slurm.* settings).
var slurmName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// options checks the flags as a whole (every problem at once) and builds the backend's options and the
// images directory; data is the agent's data directory, for the defaults.
func (f slurmFlags) options(data string, log *slog.Logger) (slurm.Options, string, error) {
	var errs []error
	if u, err := url.Parse(*f.url); *f.url == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--slurm-url %q: slurmrestd's base URL is required, http(s)://HOST:PORT", *f.url))
	}
	switch *f.user {
	case "":
		errs = append(errs, errors.New("--slurm-user is required: the Slurm user jobs are submitted as"))
	case "root":
		errs = append(errs, errors.New("--slurm-user root: slurmctld refuses root's tokens; name the user the site made for tamarack"))
	}
	if *f.tokenFile == "" {
		errs = append(errs, errors.New("--slurm-token-file is required: the file a cron job writes `scontrol token username=… lifespan=…` to"))
	} else if _, err := readSlurmToken(*f.tokenFile); err != nil {
		errs = append(errs, fmt.Errorf("--slurm-token-file: %w", err))
	}
	for _, v := range []struct{ flag, value string }{{"partition", *f.partition}, {"account", *f.account}, {"qos", *f.qos}} {
		if v.value != "" && !slurmName.MatchString(v.value) {
			errs = append(errs, fmt.Errorf("--slurm-%s %q: want a Slurm name, 1-64 of A-Z a-z 0-9 _ . -", v.flag, v.value))
		}
	}
	gres, err := parseSlurmGRES(*f.gres)
	if err != nil {
		errs = append(errs, err)
	}
	step := strings.Fields(*f.step)
	if len(step) == 0 {
		errs = append(errs, errors.New("--slurm-step is empty: the command that runs tamarack as root on a compute node, e.g. sudo -n /usr/local/bin/tamarack"))
	}
	dir, err := filepath.Abs(cmp.Or(*f.dir, filepath.Join(data, "slurm-jobs")))
	if err != nil {
		errs = append(errs, fmt.Errorf("--slurm-dir: %w", err))
	}
	images, err := filepath.Abs(cmp.Or(*f.images, filepath.Join(data, "images")))
	if err != nil {
		errs = append(errs, fmt.Errorf("--slurm-images: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return slurm.Options{}, "", err
	}
	file := *f.tokenFile
	return slurm.Options{URL: strings.TrimSuffix(*f.url, "/"), User: *f.user, Token: func() (string, error) { return readSlurmToken(file) },
		Dir: dir, Partition: *f.partition, Account: *f.account, QOS: *f.qos, GRES: gres, StepCommand: step, Logger: log}, images, nil
}

// parseSlurmGRES reads --slurm-gres MODEL=TYPE[,MODEL=TYPE…]; nil when not given. Models are the testbed's.
func parseSlurmGRES(v string) (map[string]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	out := map[string]string{}
	var errs []error
	for _, pair := range strings.Split(v, ",") {
		model, typ, ok := strings.Cut(strings.TrimSpace(pair), "=")
		switch {
		case !ok || !slurmName.MatchString(typ):
			errs = append(errs, fmt.Errorf("%q: want MODEL=TYPE, TYPE a Slurm GRES type (1-64 of A-Z a-z 0-9 _ . -)", pair))
		case !slices.Contains(testbed.GPUModels(), model):
			errs = append(errs, fmt.Errorf("%q: unknown GPU model %q; known: %s", pair, model, strings.Join(testbed.GPUModels(), ", ")))
		case out[model] != "":
			errs = append(errs, fmt.Errorf("%q: %s mapped twice", pair, model))
		default:
			out[model] = typ
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("--slurm-gres: %w (e.g. h100-80gb=h100,a100-80gb=a100)", err)
	}
	return out, nil
}

// readSlurmToken reads the JWT from a file as a cron job leaves it: the token alone, or scontrol token's
// output (`SLURM_JWT=…`, possibly with `export`); surrounding whitespace and blank or # lines ignored.
func readSlurmToken(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "export "))
		line = strings.TrimPrefix(line, "SLURM_JWT=")
		if line == "" || strings.ContainsAny(line, " \t") {
			return "", fmt.Errorf("%s: not a token, nor a SLURM_JWT=… line", path)
		}
		return line, nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return "", fmt.Errorf("%s holds no token: write `scontrol token username=USER lifespan=SECONDS` to it", path)
}
