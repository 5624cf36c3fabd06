package store

const ledgerSchema = ``
