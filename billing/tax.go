package billing

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Tax is the programme's sales tax on credit purchases (--tax-rate-bp, --tax-name, --tax-registration; default
// none). Prices are tax-inclusive: a purchase costs credits × CADCentsPerCredit cents whatever the rate, Checkout
// charges exactly that, and the receipt breaks the total down into an amount before tax and the tax in it. The
// rate, name and tax are recorded on the purchase when it is created, so a later change of rate never alters an
// issued receipt (purchases made with no tax configured say "No tax applies").
type Tax struct {
	// RateBP is the rate in basis points (1300 = 13 %); 0 means no tax.
	RateBP int64
	// Name is what the receipt calls it, e.g. "GST/HST"; required when RateBP > 0.
	Name string
	// Registration is the programme's tax registration number, printed on receipts when set.
	Registration string
}

// MaxTaxRateBP bounds the rate (100 %).
const MaxTaxRateBP = 10_000

// Applies reports whether purchases carry a tax.
func (t Tax) Applies() bool { return t.RateBP > 0 }

// Validate lists what is wrong with the setting.
func (t Tax) Validate() error {
	var errs []error
	if t.RateBP < 0 || t.RateBP > MaxTaxRateBP {
		errs = append(errs, fmt.Errorf("tax rate %d bp: 0 (no tax) to %d", t.RateBP, MaxTaxRateBP))
	}
	if t.RateBP > 0 && strings.TrimSpace(t.Name) == "" {
		errs = append(errs, errors.New("a tax rate needs a tax name (such as GST/HST)"))
	}
	if len(t.Name) > 40 {
		errs = append(errs, errors.New("tax name: at most 40 characters"))
	}
	if len(t.Registration) > 60 {
		errs = append(errs, errors.New("tax registration number: at most 60 characters"))
	}
	return errors.Join(errs...)
}

// includedTax is the tax contained in a tax-inclusive total of cents at rateBP basis points:
// total × rate / (10,000 + rate), rounded half up to the cent. The amount before tax is total − tax, so the
// two always add up to what was paid. Computed in big integers: no float, no overflow.
func includedTax(totalCents, rateBP int64) int64 {
	if totalCents <= 0 || rateBP <= 0 {
		return 0
	}
	num := new(big.Int).Mul(big.NewInt(totalCents), big.NewInt(2*rateBP))
	den := big.NewInt(2 * (10_000 + rateBP))
	num.Add(num, big.NewInt(10_000+rateBP)) // + den/2: half up
	return num.Quo(num, den).Int64()
}

// formatRate writes basis points as a percentage: 1300 → "13 %"/"13 %" (fr), 1475 → "14.75%"/"14,75 %".
func formatRate(bp int64, lang string) string {
	s := fmt.Sprintf("%d.%02d", bp/100, bp%100)
	s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	if lang == "fr" {
		return strings.Replace(s, ".", ",", 1) + "\u00a0%"
	}
	return s + "%"
}

// withTax records the programme's current tax in a purchase being created (its CADCents is the price paid).
func (s *Service) withTax(p Purchase) Purchase {
	if t := s.cfg.Tax; t.Applies() {
		p.TaxCents, p.TaxRateBP, p.TaxName = includedTax(p.CADCents, t.RateBP), t.RateBP, t.Name
	}
	return p
}
