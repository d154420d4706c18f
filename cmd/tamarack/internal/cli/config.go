package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Config is the client's saved state: named profiles, each a platform URL and its credentials. It lives in
// <user config dir>/tamarack/config.json ($XDG_CONFIG_HOME/tamarack/config.json on Linux), written 0600
// because it holds tokens.
type Config struct {
	Current  string              `json:"current,omitempty"`
	Profiles map[string]*Profile `json:"profiles"`
}

// Profile is one platform and how to reach it as one user. Either Token (an API token, tmk_…) or the
// tokens of a device login: RefreshToken renews AccessToken when it expires.
type Profile struct {
	URL          string    `json:"url"`
	Token        string    `json:"token,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expires      time.Time `json:"expires,omitzero"`
}

// SignedIn says whether the profile holds credentials.
func (p *Profile) SignedIn() bool {
	return p != nil && (p.Token != "" || p.RefreshToken != "" || p.AccessToken != "")
}

// configPath is the config file's path: $TAMARACK_CONFIG when set (tests, several setups side by side),
// else under os.UserConfigDir.
func configPath() (string, error) {
	if p := os.Getenv("TAMARACK_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory (set XDG_CONFIG_HOME or TAMARACK_CONFIG): %w", err)
	}
	return filepath.Join(dir, "tamarack", "config.json"), nil
}

func loadConfig(path string) (*Config, error) {
	c := &Config{Profiles: map[string]*Profile{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.Profiles == nil {
		c.Profiles = map[string]*Profile{}
	}
	return c, nil
}

// save writes the config atomically (a temporary file renamed over it), readable by its owner only.
func (c *Config) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
