-- +goose Up
-- The tax included in a purchase's price, fixed when the purchase is created (billing/tax.go). Purchases made
-- before carry none, which is what they were sold with.
ALTER TABLE billing_purchases ADD COLUMN tax_cents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_purchases ADD COLUMN tax_rate_bp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_purchases ADD COLUMN tax_name TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE billing_purchases DROP COLUMN tax_name;
ALTER TABLE billing_purchases DROP COLUMN tax_rate_bp;
ALTER TABLE billing_purchases DROP COLUMN tax_cents;
