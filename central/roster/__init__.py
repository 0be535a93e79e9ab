"""Schools, classes, students and teachers (imported from OneRoster 1.2), and pen assignments."""
