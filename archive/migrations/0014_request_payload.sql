-- What a ready request becomes in its flow file, computed when the request is made
-- ready: the rows without the header fields (filled from the configuration at build
-- time) and the input files behind them. The build then reads this instead of
-- decoding the practice's whole case (invoices, spend, audit) once per request.
-- '' for requests made before this column, and for flows that build from the
-- practice itself: the build falls back to the practice's data.
ALTER TABLE requests ADD COLUMN payload TEXT NOT NULL DEFAULT '';
