export { SpendCharts, EarningsChart, UtilisationChart, ProgrammeChart, dayLabel, hours } from './Charts';
export { Receipts, MonthlyStatements, PdfLink } from './Documents';
