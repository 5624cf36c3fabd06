package store

const snapshotsSchema = ``
