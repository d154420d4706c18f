package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tamarack-ai/tamarack/sdk"
)

func (a *app) walletCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "wallet",
		Short: "Your organisation's credits: purchased, granted, held, available",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.GetBillingWalletWithResponse(cmd.Context())
			if err := check(r, err); err != nil {
				return err
			}
			w := r.JSON200
			if a.output == "json" {
				return printJSON(a.Out, w)
			}
			c := func(v int) string { return credits(int64(v)) }
			return fields(a.Out, "Available", c(w.AvailableMicro)+" credits", "Purchased", c(w.PurchasedMicro), "Granted", c(w.GrantedMicro),
				"Held", c(w.HeldMicro), "Spent this month", c(w.MonthSpentMicro))
		},
	}
}

func (a *app) usageCmd() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:     "usage [--from YYYY-MM-DD] [--to YYYY-MM-DD]",
		Short:   "Metered sandbox usage by day, GPU model and sandbox",
		Example: "  tamarack usage --from 2026-12-01",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.signedIn(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.api.GetBillingUsageWithResponse(cmd.Context(), &sdk.GetBillingUsageParams{From: opt(from), To: opt(to)})
			if err := check(r, err); err != nil {
				return err
			}
			if a.output == "json" {
				return printJSON(a.Out, r.JSON200)
			}
			var rows [][]string
			for _, u := range r.JSON200.Items {
				rows = append(rows, []string{u.Day, u.GpuModel, u.SandboxId,
					(time.Duration(u.Millis) * time.Millisecond).Round(time.Second).String(),
					credits(int64(u.ChargeMicro)), credits(int64(u.CofundedMicro))})
			}
			if len(rows) == 0 {
				fmt.Fprintln(a.Out, "No usage in this period.")
				return nil
			}
			return table(a.Out, []string{"DAY", "GPU", "SANDBOX", "GPU TIME", "CHARGE (credits)", "CO-FUNDED"}, rows)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first day (default: the server's)")
	cmd.Flags().StringVar(&to, "to", "", "last day")
	return cmd
}
